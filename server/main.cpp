// sluice: the process entry point. Subcommands: serve, generate, inspect.
#include <CLI/CLI.hpp>

#include <memory>

#include "server/config_file.h"
#include "server/generate_command.h"
#include "server/inspect_command.h"
#include "server/serve_command.h"
#include "server/version.h"

int main(int argc, char** argv) {
  CLI::App app{"sluice: a multi-tenant serving daemon for Gemma models"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("sluice ") + sluice::server::version());
  // Any flag may come from a YAML file keyed by long flag names; the command line wins.
  app.set_config("--config", "", "YAML file of flags (keys are long flag names without dashes)");
  app.config_formatter(std::make_shared<sluice::server::YamlConfig>(&app));
  sluice::server::ServeOptions serve_opts;
  CLI::App* serve = sluice::server::add_serve_command(app, serve_opts);
  sluice::server::GenerateOptions gen;
  CLI::App* generate = sluice::server::add_generate_command(app, gen);
  sluice::server::InspectOptions insp;
  CLI::App* inspect = sluice::server::add_inspect_command(app, insp);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (serve->parsed()) return sluice::server::run_serve(serve_opts);
  if (generate->parsed()) return sluice::server::run_generate(gen);
  if (inspect->parsed()) return sluice::server::run_inspect(insp);
  return 2;
}
