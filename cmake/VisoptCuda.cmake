# What visopt's CUDA backend needs from CMake, shared by visopt's own build and its installed package
# config (find_package(visopt COMPONENTS cuda)):
#   visopt_find_cudnn()          the imported target visopt::cudnn (cuDNN 9: header and library)
#   visopt_check_cuda_architectures(<what> <architectures>)   warns when no architecture runs visopt's
#                                tensor-core kernels (sm_80+): compile() would refuse ViT at O1-O3 there
#   visopt_add_cuda_engines(<name> LEVELS <level>... [ARCHITECTURES <arch>...] [INCLUDES <header>...])
#                                a static library holding the CUDA engines of those levels (ResNet and
#                                ViT), compiled by nvcc, so that plain C++ files can call
#                                visopt::compile<Level, visopt::backend::Cuda>: link it instead of visopt::cuda.
include_guard(GLOBAL)

function(visopt_find_cudnn)
  if(TARGET visopt::cudnn)
    return()
  endif()
  find_path(VISOPT_CUDNN_INCLUDE_DIR cudnn.h HINTS ${CUDAToolkit_INCLUDE_DIRS} /usr/include/x86_64-linux-gnu)
  find_library(VISOPT_CUDNN_LIBRARY cudnn HINTS ${CUDAToolkit_LIBRARY_DIR} /usr/lib/x86_64-linux-gnu)
  if(VISOPT_CUDNN_INCLUDE_DIR AND VISOPT_CUDNN_LIBRARY)
    add_library(visopt::cudnn INTERFACE IMPORTED GLOBAL)
    target_include_directories(visopt::cudnn INTERFACE ${VISOPT_CUDNN_INCLUDE_DIR})
    target_link_libraries(visopt::cudnn INTERFACE ${VISOPT_CUDNN_LIBRARY})
  endif()
endfunction()

function(visopt_check_cuda_architectures what architectures)
  # The lowest architecture of the kernels that need one: the tensor-core attention (mma.sync for fp16 and
  # bf16, cp.async, ldmatrix), kernels/attention_tensor_core.cuh's tc_attention_architecture.
  set(VISOPT_TENSOR_CORE_ARCHITECTURE 80)
  foreach(arch IN LISTS architectures)
    if(arch MATCHES "^(native|all|all-major)$")
      return()
    endif()
    string(REGEX MATCH "^[0-9]+" number "${arch}")
    if(number AND number GREATER_EQUAL VISOPT_TENSOR_CORE_ARCHITECTURE)
      return()
    endif()
  endforeach()
  message(WARNING "visopt: ${what} is built for CUDA architectures '${architectures}' only. visopt's tensor-core "
                  "attention needs sm_${VISOPT_TENSOR_CORE_ARCHITECTURE} or newer, so on such GPUs compile() refuses ViT "
                  "at O1-O3, and other kernels run from PTX the driver compiles at load. Set CMAKE_CUDA_ARCHITECTURES "
                  "(90 for H100/H200, or native) before project(), or pass ARCHITECTURES to visopt_add_cuda_engines().")
endfunction()

function(visopt_add_cuda_engines name)
  cmake_parse_arguments(ARG "" "" "LEVELS;ARCHITECTURES;INCLUDES" ${ARGN})
  if(ARG_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "visopt_add_cuda_engines(${name}): unknown arguments '${ARG_UNPARSED_ARGUMENTS}'; it takes "
                        "LEVELS, ARCHITECTURES and INCLUDES")
  endif()
  if(NOT ARG_LEVELS)
    message(FATAL_ERROR "visopt_add_cuda_engines(${name}): name the levels, e.g. LEVELS O2 O3 (O0..O4, or a C++ policy "
                        "bundle such as visopt::O3::with<visopt::precision::bf16>)")
  endif()
  if(NOT TARGET visopt::cuda)
    message(FATAL_ERROR "visopt_add_cuda_engines(${name}): visopt was built without its CUDA backend (it needs the CUDA "
                        "toolkit, cuDNN 9 and cuBLASLt); use find_package(visopt REQUIRED COMPONENTS cuda) to be told why")
  endif()
  if(NOT CMAKE_CUDA_COMPILER)
    message(FATAL_ERROR "visopt_add_cuda_engines(${name}): the CUDA language is not enabled here; add CUDA to project(), "
                        "or call find_package(visopt COMPONENTS cuda) in this directory, which enables it")
  endif()
  set(includes "")
  foreach(header IN LISTS ARG_INCLUDES)
    string(APPEND includes "#include \"${header}\"\n")
  endforeach()
  set(sources "")
  set(index 0)
  foreach(level IN LISTS ARG_LEVELS)  # one file per level: nvcc compiles them in parallel
    if(level MATCHES "^O[0-4]$")
      set(level "visopt::${level}")
    endif()
    set(source ${CMAKE_CURRENT_BINARY_DIR}/${name}_engines/level_${index}.cu)
    file(CONFIGURE OUTPUT ${source} CONTENT
         "// Written by visopt_add_cuda_engines(${name}): the CUDA engines of ${level}, ResNet and ViT.\n#include <visopt/runtime/cuda_engines.cuh>\n${includes}\nVISOPT_INSTANTIATE_CUDA_ENGINES(${level});\n")
    list(APPEND sources ${source})
    math(EXPR index "${index} + 1")
  endforeach()
  set(architectures ${ARG_ARCHITECTURES})
  if(NOT architectures)
    set(architectures ${CMAKE_CUDA_ARCHITECTURES})
  endif()
  visopt_check_cuda_architectures("visopt_add_cuda_engines(${name})" "${architectures}")
  add_library(${name} STATIC ${sources})
  target_link_libraries(${name} PUBLIC visopt::cuda)
  # One CUDA runtime in the program: the shared one, which visopt::cuda links for the plain C++ side.
  set_target_properties(${name} PROPERTIES CUDA_ARCHITECTURES "${architectures}" CUDA_RUNTIME_LIBRARY Shared
                                           POSITION_INDEPENDENT_CODE ON)
endfunction()
