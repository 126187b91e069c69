#pragma once
// `--config FILE`: flags from a YAML file (INTERFACES.md, "Binaries and the command line").
//
// The file is one flat YAML mapping keyed by the long flag names without the leading
// dashes: `max-num-seqs: 128`, `host: 0.0.0.0`, `enable-prefix-caching: false`, and a list
// for a flag that takes several values (`allowed-origins: [a, b]`). Flags given on the
// command line win over the file. Rejected, by name, as a CLI::ConfigError (a ParseError:
// main prints it as one line and exits non-zero): a key that is not a flag of the command
// that runs (or of its parents), a key given twice, a nested mapping, a null value, a list
// for a one-value flag, a non-boolean for a switch, a non-number for a numeric flag, a key
// that may not come from a file (`config` itself), and YAML that does not parse (with its
// line and column). Range checks stay the flags' own validators.
//
// Wiring, on the top-level app (CLI11 reads config files only there):
//   app.set_config("--config", "", "YAML file of flags (keys are long flag names)");
//   app.config_formatter(std::make_shared<YamlConfig>(&app));
// Keys then resolve against the subcommand the command line chose (`sluice serve`), so one
// --config serves every subcommand. A `sluice serve --config F` spelling also needs
// `serve->fallthrough()` so that the subcommand hands --config up to the app.

#include <CLI/CLI.hpp>

#include <iosfwd>
#include <string>
#include <vector>

namespace sluice::server {

class YamlConfig : public CLI::Config {
 public:
  // `root`: the app holding --config, whose parsed subcommand chain names the flags. With
  // null, keys become items of the app that reads the file with no checks of ours (CLI11's
  // allow_config_extras then decides about unknown keys).
  explicit YamlConfig(const CLI::App* root = nullptr) : root_(root) {}

  // The flags of `app` and of its parsed subcommands as one flat mapping: those given, and
  // with `default_also` those with a default too; `write_description` adds each flag's help
  // as a comment. `prefix` is ignored (the format is flat). Reads back with from_config.
  std::string to_config(const CLI::App* app, bool default_also, bool write_description,
                        std::string prefix) const override;
  // Parses and checks the file (see the header comment); throws CLI::ConfigError.
  std::vector<CLI::ConfigItem> from_config(std::istream& input) const override;

 private:
  const CLI::App* root_;
};

}  // namespace sluice::server
