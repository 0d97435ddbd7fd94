#include "cli/error_report.h"

#include <cstdio>
#include <filesystem>
#include <new>

#include "common/error.h"
#include "common/interrupt.h"

namespace difftx::cli {

int report_error(std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const Interrupted& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 128 + e.signal();
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  } catch (const std::filesystem::filesystem_error& e) {
    std::fprintf(stderr, "error: %s: %s\n", e.path1().string().c_str(), e.code().message().c_str());
    return 2;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "error: out of memory: an allocation failed (the machine, a cgroup or `ulimit -v` allows "
                         "this process less than the command needs: smaller inputs, a smaller sequence_len or "
                         "micro_batch_size, or --ctx-size need less)\n");
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "internal error (please report): %s\n", e.what());
    return 1;
  }
}

}  // namespace difftx::cli
