# Finds NCCL: nccl.h and libnccl (also the wheel's libnccl.so.2 without a libnccl.so link).
# Hints: CBST_NCCL_ROOT / NCCL_ROOT (a prefix, e.g. a pip wheel's site-packages/nvidia/nccl),
# CUDAToolkit_ROOT. Defines NCCL_FOUND, NCCL_VERSION, NCCL_INCLUDE_DIR, NCCL_LIBRARY and the
# target NCCL::nccl.
set(_nccl_hints ${CBST_NCCL_ROOT} $ENV{CBST_NCCL_ROOT} ${NCCL_ROOT} $ENV{NCCL_ROOT} ${CUDAToolkit_ROOT}
                ${CUDAToolkit_LIBRARY_ROOT} /usr/local/cuda)
find_path(NCCL_INCLUDE_DIR nccl.h HINTS ${_nccl_hints} PATH_SUFFIXES include)
find_library(NCCL_LIBRARY NAMES nccl libnccl.so.2 NAMES_PER_DIR HINTS ${_nccl_hints} PATH_SUFFIXES lib64 lib lib/x86_64-linux-gnu)

set(NCCL_VERSION "")
if(NCCL_INCLUDE_DIR)
  file(READ ${NCCL_INCLUDE_DIR}/nccl.h _nccl_text)
  string(REGEX MATCH "define NCCL_MAJOR +([0-9]+)" _m "${_nccl_text}")
  set(_major ${CMAKE_MATCH_1})
  string(REGEX MATCH "define NCCL_MINOR +([0-9]+)" _m "${_nccl_text}")
  set(_minor ${CMAKE_MATCH_1})
  string(REGEX MATCH "define NCCL_PATCH +([0-9]+)" _m "${_nccl_text}")
  set(_patch ${CMAKE_MATCH_1})
  if(_major)
    set(NCCL_VERSION "${_major}.${_minor}.${_patch}")
  endif()
endif()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(NCCL REQUIRED_VARS NCCL_LIBRARY NCCL_INCLUDE_DIR VERSION_VAR NCCL_VERSION)

if(NCCL_FOUND AND NOT TARGET NCCL::nccl)
  add_library(NCCL::nccl UNKNOWN IMPORTED)
  set_target_properties(NCCL::nccl PROPERTIES
    IMPORTED_LOCATION ${NCCL_LIBRARY}
    INTERFACE_INCLUDE_DIRECTORIES ${NCCL_INCLUDE_DIR})
endif()
mark_as_advanced(NCCL_INCLUDE_DIR NCCL_LIBRARY)
