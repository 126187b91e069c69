#include "engine/chat/chat_message.h"
#include "engine/chat/jinja_text.h"

namespace sluice::chat {

std::string python_strip(std::string_view s) { return std::string(jinja::py_lstrip(jinja::py_rstrip(s))); }

}  // namespace sluice::chat
