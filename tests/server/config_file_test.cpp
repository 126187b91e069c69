// --config FILE (YamlConfig) on a small CLI11 app shaped like sluice's: flags come from the
// file, the command line wins, and bad keys and values are rejected by name.

#include "server/config_file.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <unistd.h>  // getpid

namespace sluice::server {
namespace {

struct Flags {
  int max_num_seqs = 8;
  double drain_timeout = 30.0;
  std::string host = "127.0.0.1";
  bool prefix_caching = true;
  bool verbose = false;
  std::vector<std::string> origins;
  std::string prompt;
};

// `sluice serve` and `sluice generate` with a few flags of each kind, --config on the root.
class ConfigApp {
 public:
  ConfigApp() {
    app.set_config("--config", "", "YAML file of flags (keys are long flag names)");
    app.config_formatter(std::make_shared<YamlConfig>(&app));
    app.require_subcommand(1);
    serve = app.add_subcommand("serve");
    serve->fallthrough();  // `sluice serve --config F`
    serve->add_option("--max-num-seqs", f.max_num_seqs)->check(CLI::Range(1, 1024));
    serve->add_option("--drain-timeout", f.drain_timeout);
    serve->add_option("--host", f.host);
    serve->add_flag("--enable-prefix-caching,!--no-enable-prefix-caching", f.prefix_caching);
    serve->add_flag("--verbose", f.verbose);
    serve->add_option("--allowed-origins", f.origins);
    generate = app.add_subcommand("generate");
    generate->add_option("--prompt", f.prompt);
  }

  // Parses `args` (after the program name); returns the error text, empty on success.
  std::string parse(std::vector<std::string> args) {
    std::vector<const char*> argv{"sluice"};
    for (const std::string& a : args) argv.push_back(a.c_str());
    try {
      app.parse(static_cast<int>(argv.size()), argv.data());
    } catch (const CLI::ParseError& e) {
      return e.what();
    }
    return "";
  }

  Flags f;
  CLI::App app{"test"};
  CLI::App* serve = nullptr;
  CLI::App* generate = nullptr;
};

class ConfigFileTest : public ::testing::Test {
 protected:
  std::string write(const std::string& text) {
    const std::string path = (std::filesystem::temp_directory_path() /
                              ("sluice_config_test_" + std::to_string(::getpid()) + "_" +
                               std::to_string(counter_++) + ".yaml"))
                                 .string();
    std::ofstream(path) << text;
    paths_.push_back(path);
    return path;
  }
  void TearDown() override {
    for (const auto& p : paths_) std::remove(p.c_str());
  }

 private:
  std::vector<std::string> paths_;
  int counter_ = 0;
};

TEST_F(ConfigFileTest, FileSetsFlagsOfTheInvokedSubcommand) {
  const std::string cfg = write(
      "# comment\n"
      "max-num-seqs: 128\n"
      "drain-timeout: 2.5\n"
      "host: 0.0.0.0\n"
      "enable-prefix-caching: false\n"
      "verbose: yes\n"
      "allowed-origins: [https://a.example, \"https://b.example\"]\n");
  ConfigApp a;
  EXPECT_EQ(a.parse({"--config", cfg, "serve"}), "");
  EXPECT_EQ(a.f.max_num_seqs, 128);
  EXPECT_DOUBLE_EQ(a.f.drain_timeout, 2.5);
  EXPECT_EQ(a.f.host, "0.0.0.0");
  EXPECT_FALSE(a.f.prefix_caching);
  EXPECT_TRUE(a.f.verbose);
  EXPECT_EQ(a.f.origins, (std::vector<std::string>{"https://a.example", "https://b.example"}));
}

TEST_F(ConfigFileTest, CommandLineWins) {
  const std::string cfg = write("max-num-seqs: 128\nhost: 0.0.0.0\nenable-prefix-caching: false\n");
  ConfigApp a;
  EXPECT_EQ(a.parse({"serve", "--config", cfg, "--max-num-seqs", "4", "--enable-prefix-caching"}),
            "");
  EXPECT_EQ(a.f.max_num_seqs, 4);
  EXPECT_EQ(a.f.host, "0.0.0.0");
  EXPECT_TRUE(a.f.prefix_caching);
}

TEST_F(ConfigFileTest, NegatedSwitchNameWorks) {
  const std::string cfg = write("no-enable-prefix-caching: true\n");
  ConfigApp a;
  EXPECT_EQ(a.parse({"serve", "--config", cfg}), "");
  EXPECT_FALSE(a.f.prefix_caching);
}

TEST_F(ConfigFileTest, EmptyFileSetsNothing) {
  const std::string cfg = write("# nothing here\n");
  ConfigApp a;
  EXPECT_EQ(a.parse({"serve", "--config", cfg}), "");
  EXPECT_EQ(a.f.max_num_seqs, 8);
}

TEST_F(ConfigFileTest, KeysResolveAgainstTheChosenSubcommand) {
  const std::string cfg = write("prompt: hello world\n");
  ConfigApp a;
  EXPECT_EQ(a.parse({"--config", cfg, "generate"}), "");
  EXPECT_EQ(a.f.prompt, "hello world");
  ConfigApp b;
  const std::string err = b.parse({"--config", cfg, "serve"});
  EXPECT_NE(err.find("unknown key 'prompt'"), std::string::npos) << err;
  EXPECT_NE(err.find("'sluice serve'"), std::string::npos) << err;
}

TEST_F(ConfigFileTest, BadKeysAndValuesAreRejectedByName) {
  struct Case {
    std::string yaml;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"max-num-seq: 4\n", "unknown key 'max-num-seq'"},
      {"max_num_seqs: 4\n", "not '_'"},
      {"--port: 4\n", "without the leading dashes"},
      {"max-num-seqs: 4\nmax-num-seqs: 5\n", "'max-num-seqs' appears twice"},
      {"max-num-seqs: many\n", "max-num-seqs: expected an integer number, got 'many'"},
      {"max-num-seqs: 1.5\n", "max-num-seqs: expected an integer"},
      {"drain-timeout: soon\n", "drain-timeout: expected a number"},
      {"max-num-seqs: [1, 2]\n", "max-num-seqs: takes one value, got a list"},
      {"host: {a: 1}\n", "host: expected a value, got a mapping"},
      {"host:\n", "host: has no value"},
      {"verbose: maybe\n", "verbose: expected true or false, got 'maybe'"},
      {"verbose: \"true\"\n", "verbose: expected true or false"},
      {"allowed-origins: [[a]]\n", "allowed-origins: list elements must be plain values"},
      {"config: other.yaml\n", "'config' cannot be set from a config file"},
      {"- a\n- b\n", "must be a mapping"},
      {"host: [unclosed\n", "not valid YAML at line"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.yaml);
    const std::string cfg = write(c.yaml);
    ConfigApp a;
    const std::string err = a.parse({"serve", "--config", cfg});
    EXPECT_NE(err.find(c.expected), std::string::npos) << err;
    EXPECT_EQ(err.find('\n'), std::string::npos) << err;  // one line
  }
}

TEST_F(ConfigFileTest, ValidatorsStillApply) {
  const std::string cfg = write("max-num-seqs: 5000\n");
  ConfigApp a;
  const std::string err = a.parse({"serve", "--config", cfg});
  EXPECT_NE(err.find("max-num-seqs"), std::string::npos) << err;
}

TEST_F(ConfigFileTest, MissingFileIsAnError) {
  ConfigApp a;
  EXPECT_NE(a.parse({"serve", "--config", "/nonexistent/sluice.yaml"}), "");
}

TEST_F(ConfigFileTest, ToConfigReadsBack) {
  ConfigApp a;
  ASSERT_EQ(a.parse({"serve", "--max-num-seqs", "64", "--host", "::1", "--allowed-origins", "x",
                     "--allowed-origins", "y z", "--no-enable-prefix-caching"}),
            "");
  const std::string text = a.app.config_to_str(false, true);
  EXPECT_NE(text.find("max-num-seqs: 64"), std::string::npos) << text;
  const std::string cfg = write(text);
  ConfigApp b;
  EXPECT_EQ(b.parse({"serve", "--config", cfg}), "") << text;
  EXPECT_EQ(b.f.max_num_seqs, 64);
  EXPECT_EQ(b.f.host, "::1");
  EXPECT_EQ(b.f.origins, (std::vector<std::string>{"x", "y z"}));
  EXPECT_FALSE(b.f.prefix_caching);
}

}  // namespace
}  // namespace sluice::server
