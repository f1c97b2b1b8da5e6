# MLPerf LoadGen, built from the C++ source of its pinned PyPI source distribution, which
# scripts/fetch_pinned.py unpacks into third_party/ (install-deps.sh runs it).
set(SPRUCE_LOADGEN_VERSION 6.0.17)
set(SPRUCE_LOADGEN_DIR ${PROJECT_SOURCE_DIR}/third_party/mlcommons_loadgen-${SPRUCE_LOADGEN_VERSION})
if(NOT EXISTS ${SPRUCE_LOADGEN_DIR}/loadgen.h)
  message(FATAL_ERROR "MLPerf LoadGen ${SPRUCE_LOADGEN_VERSION} is missing from ${SPRUCE_LOADGEN_DIR}: "
                      "run scripts/install-deps.sh (or make deps), which fetches it from PyPI")
endif()
string(REPLACE "." ";" _loadgen_version ${SPRUCE_LOADGEN_VERSION})
list(GET _loadgen_version 0 _loadgen_major)
list(GET _loadgen_version 1 _loadgen_minor)
add_library(mlperf_loadgen STATIC)
foreach(source early_stopping issue_query_controller loadgen logging test_settings_internal utils version results
               generated/version_generated)
  target_sources(mlperf_loadgen PRIVATE ${SPRUCE_LOADGEN_DIR}/${source}.cc)
endforeach()
# Its headers have generic names (logging.h, utils.h, version.h): only its direct users see them.
target_include_directories(mlperf_loadgen SYSTEM INTERFACE ${SPRUCE_LOADGEN_DIR})
target_include_directories(mlperf_loadgen PRIVATE ${SPRUCE_LOADGEN_DIR})
target_compile_definitions(mlperf_loadgen PRIVATE MAJOR_VERSION=${_loadgen_major} MINOR_VERSION=${_loadgen_minor})
target_compile_options(mlperf_loadgen PRIVATE -w)  # not our code: its warnings are not ours to fix
set_target_properties(mlperf_loadgen PROPERTIES CXX_STANDARD 17)
target_link_libraries(mlperf_loadgen PUBLIC Threads::Threads)
