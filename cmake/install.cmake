# make install (R1): `cmake --install DIR --prefix P` (DESTDIR honoured) puts
#   bin/hale
#   lib/libhale.so.0.1.0, libhale.so.0 (SONAME), libhale.so, libhale.a
#   include/hale/*.h                     the public headers only
#   lib/pkgconfig/hale.pc                written at install time for P
#   lib/cmake/hale/haleConfig.cmake, haleConfigVersion.cmake, haleTargets*.cmake
#                                        find_package(hale) -> hale::hale
# (lib is CMAKE_INSTALL_LIBDIR: lib/<multiarch> in a Debian build.)
include(CMakePackageConfigHelpers)

install(TARGETS hale RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS hale_shared hale_static EXPORT haleTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} NAMELINK_SKIP
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(TARGETS hale_shared
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} NAMELINK_ONLY)
install(FILES ${HALE_PUBLIC_HEADERS} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/hale)

set(HALE_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/hale)
install(EXPORT haleTargets NAMESPACE hale:: DESTINATION ${HALE_CMAKE_DIR})
configure_package_config_file(cmake/haleConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/haleConfig.cmake INSTALL_DESTINATION ${HALE_CMAKE_DIR})
# 0.x: a minor version is a new ABI (the SONAME follows the major only
# from 1.0 on), so only the same major.minor is compatible.
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/haleConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/haleConfig.cmake
  ${CMAKE_CURRENT_BINARY_DIR}/haleConfigVersion.cmake DESTINATION ${HALE_CMAKE_DIR})

# hale.pc for the prefix given at install time (cmake --install --prefix),
# not the one configured: `make install PREFIX=...` needs no reconfigure.
install(CODE "
  set(_libdir \"${CMAKE_INSTALL_LIBDIR}\")
  set(_incdir \"${CMAKE_INSTALL_INCLUDEDIR}\")
  if(NOT IS_ABSOLUTE \"\${_libdir}\")
    set(_libdir \"\\\${prefix}/\${_libdir}\")
  endif()
  if(NOT IS_ABSOLUTE \"\${_incdir}\")
    set(_incdir \"\\\${prefix}/\${_incdir}\")
  endif()
  set(_pc \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/pkgconfig/hale.pc\")
  message(STATUS \"Installing: \${_pc}\")
  file(WRITE \"\${_pc}\" \"prefix=\${CMAKE_INSTALL_PREFIX}
libdir=\${_libdir}
includedir=\${_incdir}

Name: hale
Description: hale runtime: HTTP/1.1 services with settings, logs, metrics, health and drain
Version: ${PROJECT_VERSION}
Libs: -L\\\${libdir} -lhale
Libs.private: -pthread -lm
Cflags: -I\\\${includedir}
\")
")
