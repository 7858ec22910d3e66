/* fuzz_config: a plugin's collectd config handler (built once per plugin, with that plugin's
 * source and collectd_stub.c) on hostile configuration trees. The input is read as collectd's
 * syntax, simply: "Key value..." lines, "<Key value...>" ... "</Key>" blocks, values as
 * "strings" (with \" and \\), numbers, true/false, or bare words (strings). The tree becomes
 * the children of <Plugin ...>; the handler runs, then the plugin's shutdown callback, which
 * must free whatever the configuration made. */
#include "fuzz.h"
#include "fuzz_config.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 6
#define MAX_ITEMS 512

struct parser {
  const char *p, *end;
  int items;
};

static void free_item(oconfig_item_t *it) {
  free(it->key);
  for (int i = 0; i < it->values_num; i++)
    if (it->values[i].type == OCONFIG_TYPE_STRING) free(it->values[i].value.string);
  free(it->values);
  for (int i = 0; i < it->children_num; i++)
    free_item(&it->children[i]);
  free(it->children);
}

static void skip_blank(struct parser *ps) {
  while (ps->p < ps->end && *ps->p != '\n' && isspace((unsigned char)*ps->p))
    ps->p++;
}

/* A word or a quoted string, up to the end of the line or a '>'. */
static char *token(struct parser *ps, bool *quoted) {
  skip_blank(ps);
  *quoted = false;
  if (ps->p >= ps->end || *ps->p == '\n' || *ps->p == '>') return NULL;
  size_t cap = 16, len = 0;
  char *s = malloc(cap);
  if (*ps->p == '"') {
    *quoted = true;
    ps->p++;
    while (ps->p < ps->end && *ps->p != '"' && *ps->p != '\n') {
      char ch = *ps->p++;
      if (ch == '\\' && ps->p < ps->end && *ps->p != '\n') ch = *ps->p++;
      if (len + 1 >= cap) s = realloc(s, cap *= 2);
      s[len++] = ch;
    }
    if (ps->p < ps->end && *ps->p == '"') ps->p++;
  } else {
    while (ps->p < ps->end && !isspace((unsigned char)*ps->p) && *ps->p != '>') {
      if (len + 1 >= cap) s = realloc(s, cap *= 2);
      s[len++] = *ps->p++;
    }
  }
  s[len] = 0;
  return s;
}

static void add_value(oconfig_item_t *it, char *word, bool quoted) {
  it->values = realloc(it->values, (size_t)(it->values_num + 1) * sizeof(*it->values));
  oconfig_value_t *v = &it->values[it->values_num++];
  char *endp;
  double d = strtod(word, &endp);
  if (!quoted && *word && !*endp) {
    v->type = OCONFIG_TYPE_NUMBER;
    v->value.number = d;
    free(word);
  } else if (!quoted && (!strcasecmp(word, "true") || !strcasecmp(word, "false"))) {
    v->type = OCONFIG_TYPE_BOOLEAN;
    v->value.boolean = !strcasecmp(word, "true");
    free(word);
  } else {
    v->type = OCONFIG_TYPE_STRING;
    v->value.string = word;
  }
}

/* Items until "</...>" or the end, as children of PARENT. */
static void parse_block(struct parser *ps, oconfig_item_t *parent, int depth) {
  while (ps->p < ps->end && ps->items < MAX_ITEMS) {
    skip_blank(ps);
    if (ps->p < ps->end && *ps->p == '\n') {
      ps->p++;
      continue;
    }
    bool block = false;
    if (ps->p < ps->end && *ps->p == '<') {
      ps->p++;
      if (ps->p < ps->end && *ps->p == '/') { /* the end of this block */
        while (ps->p < ps->end && *ps->p != '\n')
          ps->p++;
        return;
      }
      block = true;
    }
    bool quoted;
    char *key = token(ps, &quoted);
    if (!key) {
      while (ps->p < ps->end && *ps->p != '\n')
        ps->p++;
      continue;
    }
    parent->children =
        realloc(parent->children, (size_t)(parent->children_num + 1) * sizeof(oconfig_item_t));
    oconfig_item_t *it = &parent->children[parent->children_num++];
    memset(it, 0, sizeof(*it));
    it->key = key;
    ps->items++;
    char *word;
    while ((word = token(ps, &quoted)))
      add_value(it, word, quoted);
    while (ps->p < ps->end && *ps->p != '\n')
      ps->p++;
    if (block && depth < MAX_DEPTH) {
      parse_block(ps, it, depth + 1);
      /* children were added by pointer into a realloc'd array: fix their parents */
    }
  }
}

static void set_parents(oconfig_item_t *it) {
  for (int i = 0; i < it->children_num; i++) {
    it->children[i].parent = it;
    set_parents(&it->children[i]);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static bool registered;
  if (size > (64u << 10)) return 0;
  if (!registered) {
    module_register();
    registered = true;
  }
  struct parser ps = {(const char *)data, (const char *)data + size, 0};
  oconfig_item_t root = {0};
  root.key = strdup("Plugin");
  add_value(&root, strdup("vmscope"), true);
  parse_block(&ps, &root, 0);
  set_parents(&root);
  if (fuzz_cb.config) (void)fuzz_cb.config(&root);
  if (fuzz_cb.shutdown) (void)fuzz_cb.shutdown();
  free_item(&root);
  return 0;
}
