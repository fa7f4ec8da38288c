# Helpers shared by every folder.

# topolab_add_test(NAME SOURCES... LIBS lib...) -> one GoogleTest binary, registered with CTest.
# Tests are discovered per case so `ctest -R` works on test names.
function(topolab_add_test name)
  cmake_parse_arguments(T "" "TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} topolab_test_util GTest::gtest_main)
  target_compile_definitions(${name} PRIVATE
    TOPOLAB_SOURCE_DIR="${TOPOLAB_SOURCE_DIR}"
    TOPOLAB_BINARY_DIR="${CMAKE_BINARY_DIR}")
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  gtest_discover_tests(${name}
    DISCOVERY_TIMEOUT 60
    PROPERTIES TIMEOUT ${T_TIMEOUT} LABELS "${T_LABELS}")
endfunction()
