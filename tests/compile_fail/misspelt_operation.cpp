// Must NOT compile: an executor whose self_attention is misspelt breaks the backend contract, and the
// error names the operation it lacks (CTest checks the message) instead of silently taking another path.
#include <visopt/visopt.hpp>

struct Misspelt : visopt::backend::reference::Executor<visopt::O0> {
  using Executor::Executor;
  void self_attention() = delete;  // hides the base's, as a rename would
  visopt::Tensor self_atention(const Linear& qkv, const visopt::Tensor& x, int heads) {
    return Executor::self_attention(qkv, x, heads);
  }
};

static_assert(visopt::backend::check_executor<Misspelt>());
int main() { return 0; }
