#include "backend/backend_test_util.h"

#include <algorithm>
#include <limits>

#include "io/dtype.h"

namespace difftx::test {

std::vector<uint16_t> to_bf16(const std::vector<float>& v) {
  std::vector<uint16_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = f32_to_bf16(v[i]);
  return out;
}

void poison(Backend& backend, Buffer& b) {
  std::vector<float> nan(b.bytes() / sizeof(float), std::numeric_limits<float>::quiet_NaN());
  backend.upload(b.as<void>(), nan.data(), nan.size() * sizeof(float));
}

double relative_error(const std::vector<float>& a, const std::vector<float>& ref) {
  if (a.size() != ref.size()) return std::numeric_limits<double>::quiet_NaN();
  double max_ref = 0.0, max_diff = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i]) || !std::isfinite(ref[i])) return std::numeric_limits<double>::quiet_NaN();
    max_ref = std::max(max_ref, static_cast<double>(std::fabs(ref[i])));
    max_diff = std::max(max_diff, static_cast<double>(std::fabs(a[i] - ref[i])));
  }
  return max_ref == 0.0 ? max_diff : max_diff / max_ref;
}

void expect_close(const std::vector<float>& got, const std::vector<float>& ref, double tol, const std::string& what) {
  ASSERT_EQ(got.size(), ref.size()) << what;
  const double err = relative_error(got, ref);
  EXPECT_LE(err, tol) << what << ": max error " << err << " relative to max |ref| (NaN: an element is not finite)";
}

}  // namespace difftx::test
