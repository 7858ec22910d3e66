#include "blockgraph.h"

#include "monitor.h"

#include <libgen.h>
#include <stdlib.h>
#include <string.h>

struct vs_blockgraph {
  json_t *graph; /* {"nodes": [{"id", "name", "type"}], "edges": [{"parent", "child", "name"}]} */
  json_t *nodes; /* [{"node-name", "file", "image", "cache", "detect_zeroes", "ro"}] */
};

struct vs_blockgraph *vs_blockgraph_query(struct vs_monitor *m, struct vs_err *err) {
  _cleanup_(vs_blockgraph_freep) struct vs_blockgraph *g = vs_xcalloc(1, sizeof(*g));
  _cleanup_(json_decrefp) json_t *flat = json_pack("{sb}", "flat", 1);
  if (vs_monitor_exec(m, "x-debug-query-block-graph", NULL, &g->graph, err) < 0 ||
      vs_monitor_exec(m, "query-named-block-nodes", flat, &g->nodes, err) < 0)
    return NULL;
  return vs_steal(&g);
}

void vs_blockgraph_free(struct vs_blockgraph *g) {
  if (!g) return;
  json_decref(g->graph);
  json_decref(g->nodes);
  free(g);
}

void vs_blockgraph_freep(struct vs_blockgraph **g) {
  vs_blockgraph_free(*g);
}

const char *vs_blockgraph_node(const struct vs_blockgraph *g, size_t i) {
  json_t *nodes = json_object_get(g->graph, "nodes");
  if (i >= json_array_size(nodes)) return NULL;
  return json_string_value(json_object_get(json_array_get(nodes, i), "name")) ?: "";
}

/* Node NAME's id in the graph, or -1. */
static json_int_t node_id(const struct vs_blockgraph *g, const char *name) {
  size_t i;
  json_t *n;
  json_array_foreach(json_object_get(g->graph, "nodes"), i, n) {
    const char *nm = json_string_value(json_object_get(n, "name"));
    if (nm && strcmp(nm, name) == 0) return json_integer_value(json_object_get(n, "id"));
  }
  return -1;
}

bool vs_blockgraph_has(const struct vs_blockgraph *g, const char *name) {
  return node_id(g, name) >= 0;
}

bool vs_blockgraph_in_use(const struct vs_blockgraph *g, const char *name) {
  json_int_t id = node_id(g, name);
  size_t i;
  json_t *e;
  json_array_foreach(json_object_get(g->graph, "edges"), i, e) {
    if (id >= 0 && json_integer_value(json_object_get(e, "child")) == id) return true;
  }
  return false;
}

/* The name of the node with id ID, or NULL. Caller frees. */
static char *name_of(const struct vs_blockgraph *g, json_int_t id) {
  size_t i;
  json_t *n;
  json_array_foreach(json_object_get(g->graph, "nodes"), i, n) {
    if (json_integer_value(json_object_get(n, "id")) == id)
      return vs_xstrdup(json_string_value(json_object_get(n, "name")) ?: "");
  }
  return NULL;
}

char *vs_blockgraph_child(const struct vs_blockgraph *g, const char *node, const char *child) {
  json_int_t id = -1;
  size_t i;
  json_t *n;
  json_array_foreach(json_object_get(g->graph, "nodes"), i, n) {
    const char *nm = json_string_value(json_object_get(n, "name"));
    if (nm && strcmp(nm, node) == 0 &&
        strcmp(json_string_value(json_object_get(n, "type")) ?: "", "block-driver") == 0)
      id = json_integer_value(json_object_get(n, "id"));
  }
  json_t *e;
  json_array_foreach(json_object_get(g->graph, "edges"), i, e) {
    if (json_integer_value(json_object_get(e, "parent")) != id) continue;
    if (strcmp(json_string_value(json_object_get(e, "name")) ?: "", child) != 0) continue;
    char *name = name_of(g, json_integer_value(json_object_get(e, "child")));
    if (name) return name;
  }
  return NULL;
}

/* Node NODE's entry in query-named-block-nodes, or NULL. */
static json_t *named_node(const struct vs_blockgraph *g, const char *node) {
  size_t i;
  json_t *n;
  json_array_foreach(g->nodes, i, n) {
    const char *nm = json_string_value(json_object_get(n, "node-name"));
    if (nm && strcmp(nm, node) == 0) return n;
  }
  return NULL;
}

char *vs_blockgraph_file(const struct vs_blockgraph *g, const char *node) {
  _cleanup_(vs_freep) char *file_node = vs_blockgraph_child(g, node, "file");
  const char *f =
      file_node ? json_string_value(json_object_get(named_node(g, file_node), "file")) : NULL;
  return f ? vs_xstrdup(f) : NULL;
}

bool vs_blockgraph_header_backing_is(const struct vs_blockgraph *g, const char *node,
                                     const char *file, const char *real_path) {
  json_t *n = named_node(g, node);
  const char *b =
      json_string_value(json_object_get(json_object_get(n, "image"), "backing-filename"));
  if (!b) return false;
  if (b[0] == '/') return strcmp(b, real_path) == 0;
  _cleanup_(vs_freep) char *dir = vs_xstrdup(file);
  _cleanup_(vs_freep) char *joined = vs_xasprintf("%s/%s", dirname(dir), b);
  _cleanup_(vs_freep) char *real = realpath(joined, NULL);
  return real && strcmp(real, real_path) == 0;
}

json_t *vs_blockgraph_reopen_args(const struct vs_blockgraph *g, const char *node, const char *file,
                                  const char *backing) {
  json_t *o = json_pack("{ssssssss}", "driver", "qcow2", "node-name", node, "file", file, "backing",
                        backing);
  json_t *n = named_node(g, node);
  if (n) {
    json_t *cache = json_object_get(n, "cache");
    if (json_is_object(cache))
      json_object_set_new(o, "cache",
                          json_pack("{sbsb}", "direct",
                                    json_is_true(json_object_get(cache, "direct")), "no-flush",
                                    json_is_true(json_object_get(cache, "no-flush"))));
    const char *dz = json_string_value(json_object_get(n, "detect_zeroes"));
    if (dz) json_object_set_new(o, "detect-zeroes", json_string(dz));
    json_object_set_new(o, "read-only", json_boolean(json_is_true(json_object_get(n, "ro"))));
  }
  return json_pack("{s[o]}", "options", o);
}
