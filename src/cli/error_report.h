// How difftx reports an error that ends a command: the line it prints on stderr and the exit status.
#pragma once

#include <exception>

namespace difftx::cli {

// Prints `error` and returns the exit status:
//   difftx::Interrupted (Ctrl-C / SIGTERM after saving): its message, 128 + the signal;
//   difftx::Error: "error: MESSAGE", 2;
//   std::filesystem::filesystem_error (a path the user gave): "error: PATH: REASON", 2;
//   std::bad_alloc: "error: out of memory: ...", 2;
//   any other std::exception: "internal error (please report): MESSAGE", 1.
int report_error(std::exception_ptr error);

}  // namespace difftx::cli
