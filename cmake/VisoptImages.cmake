# Image decoding for visopt's own programs (examples, tests, the serve load generator): stb_image where
# it is installed (Debian: libstb-dev), else libjpeg(-turbo) and libpng, which io/image.hpp uses when
# VISOPT_IMAGE_LIBJPEG is defined (JPEG and PNG only). Sets VISOPT_IMAGE_DECODER (stb, libjpeg or none)
# and VISOPT_HAVE_LIBJPEG, and defines visopt_use_images(<target>).
include_guard(GLOBAL)

find_path(VISOPT_STB_INCLUDE_DIR stb/stb_image.h)
find_library(VISOPT_STB_LIBRARY stb)
find_package(JPEG QUIET)
find_package(PNG QUIET)
set(VISOPT_HAVE_LIBJPEG OFF)
if(TARGET JPEG::JPEG AND TARGET PNG::PNG)
  set(VISOPT_HAVE_LIBJPEG ON)
endif()
if(VISOPT_STB_INCLUDE_DIR)
  set(VISOPT_IMAGE_DECODER stb)
elseif(VISOPT_HAVE_LIBJPEG)
  set(VISOPT_IMAGE_DECODER libjpeg)
else()
  set(VISOPT_IMAGE_DECODER none)
endif()
message(STATUS "visopt: images decoded by ${VISOPT_IMAGE_DECODER} (stb: ${VISOPT_STB_INCLUDE_DIR}; libjpeg and libpng: ${VISOPT_HAVE_LIBJPEG})")

# visopt_use_images(<target>): <target> (a program of one translation unit that includes visopt/io/image.hpp)
# decodes with the decoder found above.
function(visopt_use_images target)
  if(VISOPT_IMAGE_DECODER STREQUAL "stb")
    target_include_directories(${target} SYSTEM PRIVATE ${VISOPT_STB_INCLUDE_DIR})
    if(VISOPT_STB_LIBRARY)
      target_link_libraries(${target} PRIVATE ${VISOPT_STB_LIBRARY})
    else()
      target_compile_definitions(${target} PRIVATE VISOPT_STB_IMPLEMENTATION)  # stb's code, compiled in its one file
    endif()
  elseif(VISOPT_IMAGE_DECODER STREQUAL "libjpeg")
    target_compile_definitions(${target} PRIVATE VISOPT_IMAGE_LIBJPEG)
    target_link_libraries(${target} PRIVATE JPEG::JPEG PNG::PNG)
  else()
    message(FATAL_ERROR "${target} decodes images: install libstb-dev, or libjpeg-dev and libpng-dev (Debian), "
                        "or configure with -DVISOPT_BUILD_EXAMPLES=OFF")
  endif()
endfunction()
