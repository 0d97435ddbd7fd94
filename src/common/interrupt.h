// Ctrl-C (SIGINT) and SIGTERM as a request to stop at the next safe point.
//
// interrupt_install() makes the first such signal only set a flag that long-running loops poll
// (the trainer saves a checkpoint and stops); the handler is one-shot (SA_RESETHAND), so a second
// signal terminates the process at once with the default action. Async-signal-safe: the handler
// only stores to a lock-free atomic.
#pragma once

#include <stdexcept>
#include <string>

namespace difftx {

void interrupt_install();          // for SIGINT and SIGTERM; idempotent
bool interrupt_requested();        // a signal arrived since install / clear
int interrupt_signal();            // that signal's number, or 0
void interrupt_clear();            // forget it (tests)

// Thrown by a loop that stopped on request, after saving what it had. The CLI prints the message
// (not as an error) and exits with 128 + signal, as a shell reports a killed command.
class Interrupted : public std::runtime_error {
 public:
  Interrupted(const std::string& message, int signal) : std::runtime_error(message), signal_(signal) {}
  int signal() const { return signal_; }

 private:
  int signal_;
};

}  // namespace difftx
