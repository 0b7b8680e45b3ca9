# Image decoding for visopt's own programs (examples, tests): io/image.hpp decodes JPEG with libjpeg(-turbo)
# and PNG with libpng (Debian: libjpeg-dev, libpng-dev), and BMP and GIF with stb_image where it is
# installed (libstb-dev; VISOPT_IMAGE_STB). Sets VISOPT_HAVE_IMAGES (libjpeg and libpng found) and
# VISOPT_HAVE_STB, and defines visopt_use_images(<target>).
include_guard(GLOBAL)

find_package(JPEG QUIET)
find_package(PNG QUIET)
find_path(VISOPT_STB_INCLUDE_DIR stb/stb_image.h)
find_library(VISOPT_STB_LIBRARY stb)
set(VISOPT_HAVE_IMAGES OFF)
if(TARGET JPEG::JPEG AND TARGET PNG::PNG)
  set(VISOPT_HAVE_IMAGES ON)
endif()
set(VISOPT_HAVE_STB OFF)
if(VISOPT_STB_INCLUDE_DIR)
  set(VISOPT_HAVE_STB ON)
endif()
message(STATUS "visopt: images: JPEG and PNG ${VISOPT_HAVE_IMAGES} (libjpeg, libpng), BMP and GIF ${VISOPT_HAVE_STB} (stb_image)")

# visopt_use_images(<target> [STB_COMPILED]): <target> includes visopt/io/image.hpp. STB_COMPILED: one of its
# files defines VISOPT_STB_IMPLEMENTATION itself (else libstb is linked, or, where Debian's library is
# missing, the target's one file compiles stb).
function(visopt_use_images target)
  cmake_parse_arguments(ARG "STB_COMPILED" "" "" ${ARGN})
  if(NOT VISOPT_HAVE_IMAGES)
    message(FATAL_ERROR "${target} decodes images: install libjpeg-dev and libpng-dev (Debian; tools/install_deps.sh does), "
                        "or configure with -DVISOPT_BUILD_EXAMPLES=OFF")
  endif()
  target_link_libraries(${target} PRIVATE JPEG::JPEG PNG::PNG)
  if(VISOPT_HAVE_STB)
    target_compile_definitions(${target} PRIVATE VISOPT_IMAGE_STB)
    target_include_directories(${target} SYSTEM PRIVATE ${VISOPT_STB_INCLUDE_DIR})
    if(VISOPT_STB_LIBRARY AND NOT ARG_STB_COMPILED)
      target_link_libraries(${target} PRIVATE ${VISOPT_STB_LIBRARY})
    elseif(NOT ARG_STB_COMPILED)
      target_compile_definitions(${target} PRIVATE VISOPT_STB_IMPLEMENTATION)
    endif()
  endif()
endfunction()
