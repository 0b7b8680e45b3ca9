// Must NOT compile: with<> takes policy tags only (CTest checks that the AxisPolicy concept is named).
#include <visopt/policy/levels.hpp>
using NotALevel = visopt::O1::with<float>;
int main() { return NotALevel::name.size() > 0 ? 0 : 1; }
