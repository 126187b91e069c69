#include "server/config_file.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstdlib>
#include <istream>
#include <set>
#include <sstream>

namespace sluice::server {
namespace {

[[noreturn]] void fail(const std::string& message) {
  throw CLI::ConfigError(fmt::format("--config: {}", message));
}

// The command line's chain of apps: the root, then each parsed subcommand below it.
std::vector<const CLI::App*> invoked_chain(const CLI::App* root) {
  std::vector<const CLI::App*> chain{root};
  for (;;) {
    const std::vector<CLI::App*> subs = chain.back()->get_subcommands();
    if (subs.empty()) break;
    chain.push_back(subs.front());
  }
  return chain;
}

std::string command_name(const std::vector<const CLI::App*>& chain) {
  std::string name;
  for (const CLI::App* a : chain) {
    if (a->get_name().empty()) continue;
    name += (name.empty() ? "" : " ") + a->get_name();
  }
  return name.empty() ? "the program" : "'" + name + "'";
}

bool parses_as_number(const std::string& s, bool integral) {
  if (s.empty()) return false;
  errno = 0;
  char* end = nullptr;
  if (integral) {
    (void)std::strtoll(s.c_str(), &end, 0);
  } else {
    (void)std::strtod(s.c_str(), &end);
  }
  return errno == 0 && end == s.c_str() + s.size();
}

// Checks one scalar against what `op` takes and returns the string CLI11 gets.
std::string scalar_input(const std::string& key, const YAML::Node& v, const CLI::Option& op) {
  const std::string text = v.Scalar();
  if (op.get_expected_min() == 0) {  // a switch
    bool b = false;
    if (v.Tag() == "!" || !YAML::convert<bool>::decode(v, b)) {
      fail(fmt::format("{}: expected true or false, got '{}'", key, text));
    }
    return b ? "true" : "false";
  }
  const std::string type = op.get_type_name();
  const std::string base = type.substr(0, type.find(':'));
  if (base == "INT" || base == "UINT" || base == "FLOAT") {
    // A quoted "8000" is still a number to YAML users; the check is on the text.
    if (!parses_as_number(text, base != "FLOAT")) {
      fail(fmt::format("{}: expected {} number, got '{}'",
                       key, base == "FLOAT" ? "a" : "an integer", text));
    }
  }
  return text;
}

std::string describe(const YAML::Node& v) {
  switch (v.Type()) {
    case YAML::NodeType::Map: return "a mapping";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Null: return "nothing";
    default: return "a scalar";
  }
}

}  // namespace

std::vector<CLI::ConfigItem> YamlConfig::from_config(std::istream& input) const {
  YAML::Node doc;
  try {
    doc = YAML::Load(input);
  } catch (const YAML::Exception& e) {
    fail(fmt::format("not valid YAML at line {}, column {}: {}", e.mark.line + 1,
                     e.mark.column + 1, e.msg));
  }
  std::vector<CLI::ConfigItem> items;
  if (doc.IsNull()) return items;  // an empty file sets nothing
  if (!doc.IsMap()) {
    fail(fmt::format("the file must be a mapping of flag names to values, not {}", describe(doc)));
  }
  const std::vector<const CLI::App*> chain =
      root_ != nullptr ? invoked_chain(root_) : std::vector<const CLI::App*>{};
  std::set<std::string> seen;
  for (const auto& kv : doc) {
    if (!kv.first.IsScalar()) fail("a key is not a plain name");
    const std::string key = kv.first.Scalar();
    if (!seen.insert(key).second) fail(fmt::format("key '{}' appears twice", key));
    const YAML::Node& value = kv.second;

    CLI::ConfigItem item;
    item.name = key;
    const CLI::Option* op = nullptr;
    // The innermost command that has the flag: its parents name the path to it.
    for (size_t i = chain.size(); i-- > 0 && op == nullptr;) {
      op = chain[i]->get_option_no_throw("--" + key);
      if (op != nullptr) {
        for (size_t k = 1; k <= i; ++k) item.parents.push_back(chain[k]->get_name());
      }
    }
    if (root_ != nullptr && op == nullptr) {
      const std::string hint = key.rfind('-', 0) == 0 ? " (write keys without the leading dashes)"
                               : key.find('_') != std::string::npos ? " (flag names use '-', not '_')"
                                                                    : "";
      fail(fmt::format("unknown key '{}': not a flag of {}{}", key, command_name(chain), hint));
    }
    if (op != nullptr && !op->get_configurable()) {
      fail(fmt::format("key '{}' cannot be set from a config file", key));
    }

    if (value.IsNull() || !value.IsDefined()) fail(fmt::format("{}: has no value", key));
    if (value.IsMap()) fail(fmt::format("{}: expected a value, got a mapping", key));
    if (value.IsSequence()) {
      if (op != nullptr && op->get_items_expected_max() <= 1) {
        fail(fmt::format("{}: takes one value, got a list", key));
      }
      for (const auto& element : value) {
        if (!element.IsScalar()) {
          fail(fmt::format("{}: list elements must be plain values, got {}", key,
                           describe(element)));
        }
        item.inputs.push_back(op != nullptr ? scalar_input(key, element, *op) : element.Scalar());
      }
      if (item.inputs.empty()) continue;  // an empty list sets nothing
    } else {
      item.inputs.push_back(op != nullptr ? scalar_input(key, value, *op) : value.Scalar());
    }
    items.push_back(std::move(item));
  }
  return items;
}

std::string YamlConfig::to_config(const CLI::App* app, bool default_also, bool write_description,
                                  std::string /*prefix*/) const {
  YAML::Emitter out;
  out << YAML::BeginMap;
  std::set<std::string> written;
  std::vector<const CLI::App*> apps{app};
  for (size_t i = 0; i < apps.size(); ++i) {
    for (const CLI::App* sub : apps[i]->get_subcommands()) apps.push_back(sub);
  }
  bool any = false;
  for (const CLI::App* a : apps) {
    for (const CLI::Option* op : a->get_options()) {
      if (!op->get_configurable() || op->get_lnames().empty()) continue;
      const std::string& name = op->get_lnames().front();
      if (name == "help" || name == "help-all" || name == "version") continue;
      std::vector<std::string> values = op->results();
      if (values.empty() && default_also && !op->get_default_str().empty()) {
        values.push_back(op->get_default_str());
      }
      if (values.empty() || !written.insert(name).second) continue;
      if (write_description && !op->get_description().empty()) {
        out << YAML::Comment(op->get_description());
      }
      out << YAML::Key << name << YAML::Value;
      if (op->get_items_expected_max() > 1) {
        out << YAML::Flow << values;
      } else {
        out << values.back();
      }
      any = true;
    }
  }
  out << YAML::EndMap;
  if (!any) return "";
  return std::string(out.c_str()) + "\n";
}

}  // namespace sluice::server
