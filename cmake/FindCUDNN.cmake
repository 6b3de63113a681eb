# Finds cuDNN: headers, library and version (read from cudnn_version.h, else cudnn.h).
# Hints: CUDNN_ROOT (e.g. a PyTorch wheel's site-packages/nvidia/cudnn), CUDAToolkit_ROOT.
# Defines CUDNN_FOUND, CUDNN_VERSION, CUDNN_INCLUDE_DIR, CUDNN_LIBRARY and the target CUDNN::cudnn.
set(_cudnn_hints ${CUDNN_ROOT} $ENV{CUDNN_ROOT} ${CUDAToolkit_ROOT} ${CUDAToolkit_LIBRARY_ROOT} /usr/local/cuda)
find_path(CUDNN_INCLUDE_DIR cudnn.h HINTS ${_cudnn_hints} PATH_SUFFIXES include)
find_library(CUDNN_LIBRARY NAMES cudnn libcudnn.so.9 NAMES_PER_DIR HINTS ${_cudnn_hints} PATH_SUFFIXES lib64 lib lib/x64)

set(CUDNN_VERSION "")
if(CUDNN_INCLUDE_DIR)
  set(_ver_file ${CUDNN_INCLUDE_DIR}/cudnn_version.h)
  if(NOT EXISTS ${_ver_file})
    set(_ver_file ${CUDNN_INCLUDE_DIR}/cudnn.h)
  endif()
  file(READ ${_ver_file} _ver_text)
  string(REGEX MATCH "define CUDNN_MAJOR +([0-9]+)" _m "${_ver_text}")
  set(_major ${CMAKE_MATCH_1})
  string(REGEX MATCH "define CUDNN_MINOR +([0-9]+)" _m "${_ver_text}")
  set(_minor ${CMAKE_MATCH_1})
  string(REGEX MATCH "define CUDNN_PATCHLEVEL +([0-9]+)" _m "${_ver_text}")
  set(_patch ${CMAKE_MATCH_1})
  if(_major)
    set(CUDNN_VERSION "${_major}.${_minor}.${_patch}")
  endif()
endif()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(CUDNN REQUIRED_VARS CUDNN_LIBRARY CUDNN_INCLUDE_DIR VERSION_VAR CUDNN_VERSION)

if(CUDNN_FOUND AND NOT TARGET CUDNN::cudnn)
  add_library(CUDNN::cudnn UNKNOWN IMPORTED)
  set_target_properties(CUDNN::cudnn PROPERTIES
    IMPORTED_LOCATION ${CUDNN_LIBRARY}
    INTERFACE_INCLUDE_DIRECTORIES ${CUDNN_INCLUDE_DIR})
endif()
mark_as_advanced(CUDNN_INCLUDE_DIR CUDNN_LIBRARY)
