// gpumartd: the node daemon. Later issues give it its roles (relay, provider); it already
// parses its command line the way users will script it.
#include <CLI/CLI.hpp>
#include <iostream>

int main(int argc, char** argv) {
  CLI::App app{"gpumartd: a gpumart node (relay or provider)", "gpumartd"};
  app.set_version_flag("--version", "gpumartd 0.1.0");
  std::string config_path;
  app.add_option("--config", config_path, "node config file (YAML)");
  CLI11_PARSE(app, argc, argv);
  std::cerr << "gpumartd: running a node is not available in this build yet "
               "(it arrives with the gossip and provider issues)\n";
  return 1;
}
