# Finds what the core needs (Eigen, nlohmann-json, OpenMP, threads) and what each optional backend
# needs, honouring VISOPT_WITH_ONEDNN / VISOPT_WITH_CUDA = ON | OFF | AUTO. Sets VISOPT_HAVE_ONEDNN
# and VISOPT_HAVE_CUDA, and the python interpreter that runs the oracle (VISOPT_PYTHON_EXECUTABLE).
# For visopt's own examples, tests and benchmarks only: CLI11::CLI11 and an image decoder (VisoptImages.cmake).
find_package(Eigen3 3.3 REQUIRED NO_MODULE)
find_package(nlohmann_json 3.2 REQUIRED)
find_package(OpenMP REQUIRED COMPONENTS CXX)
find_package(Threads REQUIRED)

function(visopt_resolve_backend option found what)
  if(${option} STREQUAL "ON" AND NOT ${found})
    message(FATAL_ERROR "${option}=ON but ${what} was not found")
  endif()
endfunction()

set(VISOPT_HAVE_ONEDNN OFF)
if(NOT VISOPT_WITH_ONEDNN STREQUAL "OFF")
  # Debian's dnnl-config.cmake (built with the OpenCL GPU runtime) calls find_package(OpenCL REQUIRED),
  # which would stop the whole configure where OpenCL is missing: look first, and say what to install.
  find_file(VISOPT_DNNL_CONFIG dnnl-config.cmake HINTS ${dnnl_DIR} PATHS ${CMAKE_PREFIX_PATH} ${CMAKE_SYSTEM_PREFIX_PATH}
            PATH_SUFFIXES lib/${CMAKE_LIBRARY_ARCHITECTURE}/cmake/dnnl lib/cmake/dnnl lib64/cmake/dnnl NO_DEFAULT_PATH)
  set(visopt_dnnl_usable ON)
  if(VISOPT_DNNL_CONFIG)
    file(STRINGS "${VISOPT_DNNL_CONFIG}" visopt_dnnl_needs_opencl REGEX "find_package\\(OpenCL REQUIRED\\)")
    if(visopt_dnnl_needs_opencl)
      find_package(OpenCL QUIET)
      if(NOT OpenCL_FOUND)
        set(visopt_dnnl_usable OFF)
        message(WARNING "visopt: oneDNN's CMake config (${VISOPT_DNNL_CONFIG}) requires OpenCL, which was not found; "
                        "building without the oneDNN backend. Install ocl-icd-opencl-dev (Debian) to enable it.")
      endif()
    endif()
  endif()
  if(visopt_dnnl_usable)
    find_package(dnnl CONFIG QUIET)
  endif()
  if(dnnl_FOUND)
    set(VISOPT_HAVE_ONEDNN ON)
  endif()
  visopt_resolve_backend(VISOPT_WITH_ONEDNN VISOPT_HAVE_ONEDNN "oneDNN (libdnnl-dev)")
endif()

set(VISOPT_HAVE_CUDA OFF)
if(NOT VISOPT_WITH_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  include(VisoptCuda)
  check_language(CUDA)
  find_package(CUDAToolkit QUIET)
  visopt_find_cudnn()
  if(CMAKE_CUDA_COMPILER AND CUDAToolkit_FOUND AND TARGET CUDA::cublasLt AND TARGET visopt::cudnn)
    set(VISOPT_HAVE_CUDA ON)
    enable_language(CUDA)
    visopt_check_cuda_architectures("visopt" "${CMAKE_CUDA_ARCHITECTURES}")
  endif()
  visopt_resolve_backend(VISOPT_WITH_CUDA VISOPT_HAVE_CUDA "the CUDA toolkit with cuDNN and cuBLASLt")
endif()

# The oracle: VISOPT_PYTHON, else /usr/bin/python3 when it imports torch, else python3 (CONVENTIONS.md).
if(DEFINED ENV{VISOPT_PYTHON} AND NOT VISOPT_PYTHON_EXECUTABLE)
  set(VISOPT_PYTHON_EXECUTABLE $ENV{VISOPT_PYTHON})
endif()
if(NOT VISOPT_PYTHON_EXECUTABLE)
  foreach(candidate /usr/bin/python3 python3)
    execute_process(COMMAND ${candidate} -c "import torch, torchvision" RESULT_VARIABLE rc OUTPUT_QUIET ERROR_QUIET)
    if(rc EQUAL 0)
      set(VISOPT_PYTHON_EXECUTABLE ${candidate})
      break()
    endif()
  endforeach()
endif()
set(VISOPT_PYTHON_EXECUTABLE "${VISOPT_PYTHON_EXECUTABLE}" CACHE STRING "Python with torch and torchvision (the oracle)")

message(STATUS "visopt: oneDNN backend ${VISOPT_HAVE_ONEDNN}, CUDA backend ${VISOPT_HAVE_CUDA}, oracle '${VISOPT_PYTHON_EXECUTABLE}'")

# ---- what only visopt's own examples and benchmarks need (never a consumer of the package) ----
if(VISOPT_BUILD_EXAMPLES OR VISOPT_BUILD_BENCH)
  # CLI11: Debian's libcli11-dev ships a CMake package; elsewhere the header may be all there is
  # (-DVISOPT_CLI11_INCLUDE_DIR=/path/holding/CLI).
  find_package(CLI11 CONFIG QUIET)
  if(NOT TARGET CLI11::CLI11)
    find_path(VISOPT_CLI11_INCLUDE_DIR CLI/CLI.hpp)
    if(NOT VISOPT_CLI11_INCLUDE_DIR)
      message(FATAL_ERROR "The examples and benchmarks need CLI11 (Debian: libcli11-dev; or -DVISOPT_CLI11_INCLUDE_DIR=...), "
                          "or configure with -DVISOPT_BUILD_EXAMPLES=OFF -DVISOPT_BUILD_BENCH=OFF")
    endif()
    add_library(CLI11::CLI11 INTERFACE IMPORTED)
    target_include_directories(CLI11::CLI11 INTERFACE ${VISOPT_CLI11_INCLUDE_DIR})
  endif()
endif()

if(VISOPT_BUILD_EXAMPLES OR VISOPT_BUILD_TESTS OR VISOPT_BUILD_BENCH)
  include(VisoptImages)
endif()
