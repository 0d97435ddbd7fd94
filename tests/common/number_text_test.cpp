#include "common/number_text.h"

#include <gtest/gtest.h>

#include <limits>

namespace difftx {
namespace {

TEST(NumberText, FixedDecimalsBelowAMillionScientificAbove) {
  EXPECT_EQ(number_text(2.718281828, 4), "2.7183");
  EXPECT_EQ(number_text(-0.5, 3), "-0.500");
  EXPECT_EQ(number_text(999999.0, 4), "999999.0000");
  EXPECT_EQ(number_text(1e6, 4), "1.0000e+06");
  EXPECT_EQ(number_text(-2.5e7, 3), "-2.500e+07");
  EXPECT_EQ(number_text(static_cast<double>(std::numeric_limits<float>::max()), 4), "3.4028e+38");
  EXPECT_EQ(number_text(std::numeric_limits<double>::infinity(), 4), "inf");
  EXPECT_EQ(number_text(std::numeric_limits<double>::quiet_NaN(), 4), "nan");
}

}  // namespace
}  // namespace difftx
