# `cmake --install` gives a usable program: installs the build into a fresh prefix and runs
# the installed cbst there: its version, and `synth`, which writes PNGs through libpng and
# its parameters as JSON.
#   cmake -DBUILD_DIR=<build> -DPREFIX=<new folder> -P tests/install_test.cmake
file(REMOVE_RECURSE ${PREFIX})
execute_process(COMMAND ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${PREFIX}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cmake --install failed (${rc}):\n${out}")
endif()
set(cbst ${PREFIX}/bin/cbst)
if(NOT EXISTS ${cbst})
  message(FATAL_ERROR "cmake --install wrote no ${cbst}:\n${out}")
endif()

execute_process(COMMAND ${cbst} --version RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT rc EQUAL 0 OR NOT out MATCHES "^cbst [0-9]+\\.[0-9]+\\.[0-9]+")
  message(FATAL_ERROR "the installed cbst --version exited ${rc}:\n${out}")
endif()

execute_process(COMMAND ${cbst} synth --out ${PREFIX}/synth --size 16x32 --source 2 --target-train 1 --target-val 1
                WORKING_DIRECTORY ${PREFIX} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the installed cbst synth exited ${rc}:\n${out}")
endif()
file(READ ${PREFIX}/synth/synth.json json)
string(JSON width GET "${json}" width)
string(JSON source GET "${json}" source)
file(GLOB gta5_images ${PREFIX}/synth/gta5/images/*.png)
list(LENGTH gta5_images n_images)
if(NOT width EQUAL 32 OR NOT source EQUAL 2 OR NOT n_images EQUAL 2)
  message(FATAL_ERROR "the installed cbst synth wrote width ${width}, source ${source} and ${n_images} "
                      "GTA5 images; expected 32, 2 and 2:\n${json}")
endif()
file(REMOVE_RECURSE ${PREFIX})
