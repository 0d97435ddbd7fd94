#include "tokenizer/metaspace.h"

#include "tokenizer/utf8.h"

namespace difftx::tok {

MetaspaceOptions metaspace_options_from_json(const JsonRef& value) {
  MetaspaceOptions o;
  o.replacement = value.at("replacement").as_char();
  o.replacement_utf8.clear();
  utf8_append(o.replacement_utf8, o.replacement);
  auto scheme = value.find("prepend_scheme");
  if (scheme) {
    std::string s = scheme->as_string();
    if (s == "always") o.scheme = PrependScheme::always;
    else if (s == "first") o.scheme = PrependScheme::first;
    else if (s == "never") o.scheme = PrependScheme::never;
    else scheme->fail("must be \"always\", \"first\" or \"never\", got \"" + s + "\"");
  }
  if (auto add_prefix_space = value.find("add_prefix_space"); add_prefix_space && !add_prefix_space->as_bool()) {
    if (scheme && o.scheme != PrependScheme::never)
      add_prefix_space->fail("is false but prepend_scheme is not \"never\"");
    o.scheme = PrependScheme::never;
  }
  if (auto str_rep = value.find("str_rep")) str_rep->as_string();
  o.split = value.get_bool("split", true);
  return o;
}

}  // namespace difftx::tok
