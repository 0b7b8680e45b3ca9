# cmake -DSOURCE_DIR=... -DWORK_DIR=... [-DBUILD_DIR=...] [-DCONFIGURE_ARGS=a;b] [-DEXPECT=regex] [-DRUN=ON] -P run.cmake:
# configure and build a consumer project SOURCE_DIR in WORK_DIR/build; with BUILD_DIR, first install visopt
# from it into WORK_DIR/prefix and point the project there (find_package); with EXPECT, the configure output
# must match it; with RUN, run WORK_DIR/build/consumer.
file(REMOVE_RECURSE ${WORK_DIR})
set(prefix_args "")
if(BUILD_DIR)
  execute_process(COMMAND ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${WORK_DIR}/prefix COMMAND_ERROR_IS_FATAL ANY OUTPUT_QUIET)
  set(prefix_args -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix)
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${WORK_DIR}/build ${prefix_args} -DCMAKE_BUILD_TYPE=Release ${CONFIGURE_ARGS}
                OUTPUT_VARIABLE out ERROR_VARIABLE out RESULT_VARIABLE rc)
message("${out}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "configuring ${SOURCE_DIR} failed")
endif()
if(EXPECT AND NOT out MATCHES "${EXPECT}")
  message(FATAL_ERROR "configuring ${SOURCE_DIR} did not say what it should: '${EXPECT}'")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build ${WORK_DIR}/build --parallel COMMAND_ERROR_IS_FATAL ANY OUTPUT_QUIET)
if(RUN)
  execute_process(COMMAND ${WORK_DIR}/build/consumer COMMAND_ERROR_IS_FATAL ANY)
endif()
