# libhale (R1): the runtime as an installable library.
#   hale_shared -> libhale.so.0.1.0, SONAME libhale.so.0 (exported target hale::hale)
#   hale_static -> libhale.a                        (exported target hale::hale_static)
# Both come from one set of objects compiled with -fPIC and
# -fvisibility=hidden; the public headers (HALE_PUBLIC_HEADERS, installed
# under include/hale/) mark their declarations visible, and the version
# script cmake/libhale.map exports only hale_* from the shared object.
# No test hooks, no LTO (a static archive of LTO bytecode would tie its
# users to this compiler).

# The public API: what docs/runtime.md documents. Every other header of
# src/runtime is internal and never installed.
set(HALE_PUBLIC_HEADERS
  src/runtime/config/config.h src/runtime/health/health.h src/runtime/http/http.h
  src/runtime/service/lifecycle.h src/runtime/observe/log.h src/runtime/observe/metrics.h
  src/runtime/http/router.h src/runtime/service/service.h src/runtime/common/util.h)

set(HALE_SOVERSION 0)

add_library(hale_lib_obj OBJECT ${RUNTIME_SRC})
set_target_properties(hale_lib_obj PROPERTIES
  POSITION_INDEPENDENT_CODE ON C_VISIBILITY_PRESET hidden)
target_include_directories(hale_lib_obj PRIVATE ${RUNTIME_INC})
target_compile_definitions(hale_lib_obj PRIVATE HALE_IN_TREE=1
  HALE_VERSION="${PROJECT_VERSION}" HALE_REVISION="${HALE_REVISION}"
  HALE_COMPILER="${CMAKE_C_COMPILER_ID}-${CMAKE_C_COMPILER_VERSION}")
target_compile_options(hale_lib_obj PRIVATE -fno-lto)

set(HALE_MAP ${CMAKE_CURRENT_SOURCE_DIR}/cmake/libhale.map)
add_library(hale_shared SHARED $<TARGET_OBJECTS:hale_lib_obj>)
set_target_properties(hale_shared PROPERTIES
  OUTPUT_NAME hale EXPORT_NAME hale
  VERSION ${PROJECT_VERSION} SOVERSION ${HALE_SOVERSION}
  LINK_DEPENDS ${HALE_MAP})
target_link_options(hale_shared PRIVATE -Wl,--version-script=${HALE_MAP}
  -Wl,--no-undefined)
target_link_libraries(hale_shared PRIVATE Threads::Threads m)

add_library(hale_static STATIC $<TARGET_OBJECTS:hale_lib_obj>)
set_target_properties(hale_static PROPERTIES OUTPUT_NAME hale EXPORT_NAME hale_static)
# libhale.a as one relocatable object whose hidden symbols are made local
# (ld -r, objcopy --localize-hidden): a static user then sees the same
# global names as libhale.so's users (the public hale_* API), and an
# internal name (xmalloc, toml_parse...) can never clash with its own.
add_custom_command(TARGET hale_static POST_BUILD
  COMMAND ${CMAKE_LINKER} -r -o libhale-all.o $<TARGET_OBJECTS:hale_lib_obj>
  COMMAND ${CMAKE_OBJCOPY} --localize-hidden libhale-all.o
  COMMAND ${CMAKE_COMMAND} -E rm -f $<TARGET_FILE:hale_static>
  COMMAND ${CMAKE_AR} rcs $<TARGET_FILE:hale_static> libhale-all.o
  COMMAND ${CMAKE_COMMAND} -E rm -f libhale-all.o
  WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}
  COMMAND_EXPAND_LISTS VERBATIM)
target_link_libraries(hale_static INTERFACE Threads::Threads m)

# In the build tree the public headers are found in their subsystem folders;
# installed, they sit together under include/hale/.
foreach(t hale_shared hale_static)
  foreach(h ${HALE_PUBLIC_HEADERS})
    get_filename_component(d ${CMAKE_CURRENT_SOURCE_DIR}/${h} DIRECTORY)
    target_include_directories(${t} INTERFACE $<BUILD_INTERFACE:${d}>)
  endforeach()
  target_include_directories(${t} INTERFACE $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
endforeach()
