// spruce: prune networks to structured sparsity and run them faster than dense on CPUs.
#include <algorithm>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include "command.hpp"
#include "spruce/error.hpp"

namespace spruce::cli {
namespace {
std::vector<std::pair<std::string, void (*)(CLI::App&)>>& registry() {
  static std::vector<std::pair<std::string, void (*)(CLI::App&)>> commands;
  return commands;
}
}  // namespace

Command::Command(const char* name, void (*add)(CLI::App& app)) { registry().emplace_back(name, add); }

}  // namespace spruce::cli

int main(int argc, char** argv) {
  CLI::App app{"spruce: prune networks to structured sparsity, and run them faster than dense on CPUs"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "spruce 0.1.0");
  auto commands = spruce::cli::registry();
  std::sort(commands.begin(), commands.end());
  for (const auto& [name, add] : commands) add(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {  // --help, --version
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "spruce: error: " << e.what() << "\n(see `spruce --help`)\n";
    return 2;
  } catch (const spruce::Error& e) {
    std::cerr << "spruce: error: " << e.what() << '\n';
    return e.exit_code();
  } catch (const std::exception& e) {
    std::cerr << "spruce: error: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
