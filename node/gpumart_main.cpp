#include <iostream>

#include "node/cli.h"

int main(int argc, char** argv) { return gpumart::node::RunCli(argc, argv, std::cout, std::cerr); }
