# The web console and /api/v1/ (console.h): compiled into gpumart_node (it runs the node's
# queries), with the page's files embedded at build time by embed_assets.cmake. Included by
# node/CMakeLists.txt (a generated source is only seen by targets of the directory that makes it).
set(console_dir ${CMAKE_CURRENT_SOURCE_DIR}/console)
file(GLOB console_assets CONFIGURE_DEPENDS ${console_dir}/assets/*)
set(console_generated ${CMAKE_CURRENT_BINARY_DIR}/console/console_assets.cpp)
add_custom_command(
  OUTPUT ${console_generated}
  COMMAND ${CMAKE_COMMAND} -DASSET_DIR=${console_dir}/assets -DOUTPUT=${console_generated}
          -P ${console_dir}/embed_assets.cmake
  DEPENDS ${console_assets} ${console_dir}/embed_assets.cmake
  COMMENT "Embedding the console's assets"
  VERBATIM)
target_sources(gpumart_node PRIVATE ${console_dir}/console.cpp ${console_generated})
