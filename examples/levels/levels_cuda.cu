// levels built by nvcc: the same program as levels.cpp, with the cuda backend added to the table when a GPU is there.
#include "levels.cpp"
