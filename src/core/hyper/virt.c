#include "virt.h"

#include "qcow2new.h"

#include <errno.h>
#include <fnmatch.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libvirt/libvirt-qemu.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/xpath.h>

#include "dl.h"

/* libvirt is opened on the first connection (dl.h): a command that reads images only does not
 * pay for its 50-odd shared objects at start-up. */
/* clang-format off */
#define VIRT_SYMBOLS(X) X(virConnectClose) X(virConnectDomainEventDeregisterAny)                  \
  X(virConnectDomainEventRegisterAny) X(virConnectGetType) X(virConnectGetURI)                    \
  X(virConnectIsAlive) X(virConnectListAllDomains) X(virConnectOpen) X(virConnectOpenReadOnly)    \
  X(virDomainAbortJob) X(virDomainBackupBegin) X(virDomainBackupGetXMLDesc) X(virDomainBlockCopy) \
  X(virDomainBlockJobAbort) X(virDomainFSFreeze) X(virDomainFSThaw) X(virDomainFree)              \
  X(virDomainGetBlockInfo) X(virDomainGetBlockJobInfo) X(virDomainGetName)                        \
  X(virDomainGetUUIDString) X(virDomainGetXMLDesc) X(virDomainIsActive) X(virDomainLookupByName)  \
  X(virDomainLookupByUUIDString) X(virEventRegisterDefaultImpl) X(virEventRunDefaultImpl)         \
  X(virGetLastError) X(virGetLastErrorMessage) X(virInitialize) X(virResetLastError)              \
  X(virSetErrorFunc)
/* clang-format on */
VS_DL_LIBRARY(virt_lib, VS_SONAME_VIRT, "libvirt0", VIRT_SYMBOLS);
#define VIRT_QEMU_SYMBOLS(X) X(virDomainQemuAgentCommand) X(virDomainQemuMonitorCommand)
VS_DL_LIBRARY(virt_qemu_lib, VS_SONAME_VIRT_QEMU, "libvirt0", VIRT_QEMU_SYMBOLS);
/* libxml2 (and the ICU and libstdc++ it brings) too, on the first domain XML read. xmlFree is
 * libxml2's variable holding its free function: sym_xmlFree points to it. */
/* clang-format off */
#define XML_SYMBOLS(X) X(xmlInitParser) X(xmlReadMemory) X(xmlDocGetRootElement)                  \
  X(xmlXPathNewContext) X(xmlXPathFreeContext) X(xmlFreeDoc) X(xmlXPathEvalExpression)            \
  X(xmlXPathFreeObject) X(xmlNodeGetContent) X(xmlEncodeSpecialChars) X(xmlFree)
/* clang-format on */
VS_DL_LIBRARY(xml_lib, VS_SONAME_XML2, "libxml2", XML_SYMBOLS);

struct vs_virt {
  virConnectPtr conn;
  char *uri;
  int lifecycle_callback; /* -1: none */
};

/* libvirt prints every error to stderr unless told otherwise; ours go into struct vs_err. */
static void quiet(void *ctx, virErrorPtr e) {
  (void)ctx;
  (void)e;
}
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static void init_libvirt(void) {
  sym_virInitialize();
  sym_virSetErrorFunc(NULL, quiet);
}
static pthread_once_t xml_once = PTHREAD_ONCE_INIT;

/* Before the first call into libvirt: 0, or -1 when it cannot be loaded (ERR says why). */
static int load_libvirt(struct vs_err *err) {
  if (vs_dl_load(&virt_lib, err) < 0 || vs_dl_load(&virt_qemu_lib, err) < 0) return -1;
  pthread_once(&init_once, init_libvirt);
  return 0;
}

static int libvirt_error(struct vs_err *err, const char *fmt, const char *what) {
  const char *msg = sym_virGetLastErrorMessage();
  char *ctx = vs_xasprintf(fmt, what);
  vs_err_set(err, EIO, "%s: %s", ctx, msg ? msg : "unknown libvirt error");
  free(ctx);
  return -1;
}

/* libvirt's event loop, for lifecycle events: registered before the first connection that
 * wants events, and run by one thread for the life of the process. */
static pthread_once_t events_once = PTHREAD_ONCE_INIT;
static bool events_running;
static void *run_events(void *arg) {
  (void)arg;
  for (;;)
    if (sym_virEventRunDefaultImpl() < 0) usleep(100000);
  return NULL;
}
static void start_events(void) {
  if (sym_virEventRegisterDefaultImpl() < 0) return;
  pthread_t t;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  events_running = pthread_create(&t, &attr, run_events, NULL) == 0;
  pthread_attr_destroy(&attr);
}

struct vs_virt *vs_virt_open(const char *uri, bool read_only, struct vs_err *err) {
  if (load_libvirt(err) < 0) return NULL;
  virConnectPtr conn = read_only ? sym_virConnectOpenReadOnly(uri) : sym_virConnectOpen(uri);
  if (!conn) {
    libvirt_error(err, "cannot connect to libvirt at %s", uri ? uri : "(default URI)");
    return NULL;
  }
  struct vs_virt *v = vs_xcalloc(1, sizeof(*v));
  v->conn = conn;
  v->lifecycle_callback = -1;
  char *actual = sym_virConnectGetURI(conn);
  v->uri = vs_xstrdup(actual ? actual : uri ? uri : "");
  free(actual);
  return v;
}

void vs_virt_close(struct vs_virt *v) {
  if (!v) return;
  if (v->lifecycle_callback >= 0)
    sym_virConnectDomainEventDeregisterAny(v->conn, v->lifecycle_callback);
  sym_virConnectClose(v->conn);
  free(v->uri);
  free(v);
}

void vs_virt_closep(struct vs_virt **v) {
  vs_virt_close(*v);
}

bool vs_virt_alive(struct vs_virt *v) {
  return v && sym_virConnectIsAlive(v->conn) == 1;
}

const char *vs_virt_uri(const struct vs_virt *v) {
  return v->uri;
}

static int cmp_domain(const void *a, const void *b) {
  return strcmp(((const struct vs_domain *)a)->name, ((const struct vs_domain *)b)->name);
}

int vs_virt_domains(struct vs_virt *v, struct vs_domain **out, size_t *n, struct vs_err *err) {
  virDomainPtr *doms = NULL;
  int count = sym_virConnectListAllDomains(v->conn, &doms, 0);
  if (count < 0) return libvirt_error(err, "%s: cannot list domains", v->uri);
  struct vs_domain *list = vs_xcalloc((size_t)count + 1, sizeof(*list));
  size_t got = 0;
  for (int i = 0; i < count; i++) {
    /* A domain that vanishes between the listing and these calls is simply not listed. */
    const char *name = sym_virDomainGetName(doms[i]);
    char uuid[VIR_UUID_STRING_BUFLEN];
    int active = sym_virDomainIsActive(doms[i]);
    char *xml = sym_virDomainGetXMLDesc(doms[i], 0);
    if (name && xml && active >= 0 && sym_virDomainGetUUIDString(doms[i], uuid) == 0)
      list[got++] = (struct vs_domain){vs_xstrdup(name), vs_xstrdup(uuid), active == 1, xml};
    else
      free(xml);
    sym_virDomainFree(doms[i]);
  }
  free(doms);
  qsort(list, got, sizeof(*list), cmp_domain);
  *out = list;
  *n = got;
  return 0;
}

void vs_domains_free(struct vs_domain *d, size_t n) {
  for (size_t i = 0; d && i < n; i++) {
    free(d[i].name);
    free(d[i].uuid);
    free(d[i].xml);
  }
  free(d);
}

/* ------------------------------------------------------------------------------- XML */

struct xml {
  xmlDocPtr doc;
  xmlXPathContextPtr ctx;
};

static void xml_free(struct xml *x) {
  if (x->ctx) sym_xmlXPathFreeContext(x->ctx);
  if (x->doc) sym_xmlFreeDoc(x->doc);
}

static void xml_init(void) {
  sym_xmlInitParser();
}

static int xml_parse(const char *text, const char *what, struct xml *x, struct vs_err *err) {
  /* (ERR may be NULL for callers that only need to know whether it parsed.) */
  *x = (struct xml){0};
  if (vs_dl_load(&xml_lib, err) < 0) return -1;
  pthread_once(&xml_once, xml_init);
  /* No network, no entity expansion: a domain XML has no business with either. */
  x->doc = sym_xmlReadMemory(text, (int)strnlen(text, 64u << 20), "domain.xml", NULL,
                             XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
  if (!x->doc || !sym_xmlDocGetRootElement(x->doc) ||
      strcmp((const char *)sym_xmlDocGetRootElement(x->doc)->name, "domain") != 0) {
    xml_free(x);
    return vs_err_set(err, EINVAL, "%s: the domain XML does not parse or is not <domain>", what);
  }
  x->ctx = sym_xmlXPathNewContext(x->doc);
  if (!x->ctx) {
    xml_free(x);
    return vs_err_set(err, ENOMEM, "%s: cannot evaluate the domain XML", what);
  }
  return 0;
}

/* string(EXPR) relative to NODE (NULL: the document), or NULL when empty. Caller frees. */
static char *xml_string(struct xml *x, xmlNodePtr node, const char *expr) {
  x->ctx->node = node ? node : sym_xmlDocGetRootElement(x->doc);
  char *full = vs_xasprintf("string(%s)", expr);
  xmlXPathObjectPtr o = sym_xmlXPathEvalExpression((const xmlChar *)full, x->ctx);
  free(full);
  char *s = NULL;
  if (o && o->type == XPATH_STRING && o->stringval && o->stringval[0])
    s = vs_xstrdup((const char *)o->stringval);
  sym_xmlXPathFreeObject(o);
  return s;
}

static bool xml_exists(struct xml *x, xmlNodePtr node, const char *expr) {
  x->ctx->node = node ? node : sym_xmlDocGetRootElement(x->doc);
  char *full = vs_xasprintf("boolean(%s)", expr);
  xmlXPathObjectPtr o = sym_xmlXPathEvalExpression((const xmlChar *)full, x->ctx);
  free(full);
  bool yes = o && o->type == XPATH_BOOLEAN && o->boolval;
  sym_xmlXPathFreeObject(o);
  return yes;
}

/* The nodes EXPR selects from the root (caller frees the object). */
static xmlXPathObjectPtr xml_nodes(struct xml *x, const char *expr) {
  x->ctx->node = sym_xmlDocGetRootElement(x->doc);
  xmlXPathObjectPtr o = sym_xmlXPathEvalExpression((const xmlChar *)expr, x->ctx);
  if (o && (o->type != XPATH_NODESET || !o->nodesetval)) {
    sym_xmlXPathFreeObject(o);
    return NULL;
  }
  return o;
}

static void set_from(struct xml *x, xmlNodePtr node, struct vs_feature *doc, const char *key,
                     const char *expr) {
  char *v = xml_string(x, node, expr);
  if (v) vs_feature_set(doc, key, v, "domain XML");
  free(v);
}

struct field {
  const char *name, *expr;
};

/* KiB from a libvirt memory element's value and unit. */
static void set_memory(struct xml *x, struct vs_feature *doc, const char *key, const char *elem) {
  char *expr = vs_xasprintf("/domain/%s", elem), *uexpr = vs_xasprintf("/domain/%s/@unit", elem);
  char *value = xml_string(x, NULL, expr), *unit = xml_string(x, NULL, uexpr);
  free(expr);
  free(uexpr);
  if (value) {
    static const struct {
      const char *unit;
      double factor;
    } units[] = {
        {"b", 1.0 / 1024},   {"bytes", 1.0 / 1024}, {"KB", 1000.0 / 1024}, {"k", 1},
        {"KiB", 1},          {"MB", 1e6 / 1024},    {"M", 1024},           {"MiB", 1024},
        {"GB", 1e9 / 1024},  {"G", 1048576},        {"GiB", 1048576},      {"TB", 1e12 / 1024},
        {"T", 1073741824.0}, {"TiB", 1073741824.0}};
    double factor = 1;
    for (size_t i = 0; unit && i < sizeof(units) / sizeof(units[0]); i++)
      if (strcmp(unit, units[i].unit) == 0) factor = units[i].factor;
    char *end;
    double n = strtod(value, &end);
    if (*end == '\0' && end != value)
      vs_feature_setf(doc, key, "domain XML", "%.0f", n * factor);
    else
      vs_feature_set(doc, key, value, "domain XML");
  }
  free(value);
  free(unit);
}

/* Every node of EXPR as vm:devices/KIND[ID]/FIELD, where ID is the ID_EXPR of the node (a
 * disk's target) or, when that is empty or NULL, its 1-based position. */
static void set_devices(struct xml *x, struct vs_feature *doc, const char *kind, const char *expr,
                        const char *id_expr, const struct field *fields, size_t n_fields) {
  xmlXPathObjectPtr o = xml_nodes(x, expr);
  for (int i = 0; o && i < o->nodesetval->nodeNr; i++) {
    xmlNodePtr node = o->nodesetval->nodeTab[i];
    char *id = id_expr ? xml_string(x, node, id_expr) : NULL;
    if (!id) id = vs_xasprintf("%d", i + 1);
    for (size_t f = 0; f < n_fields; f++) {
      char *key = vs_xasprintf("vm:devices/%s[%s]/%s", kind, id, fields[f].name);
      if (fields[f].expr[0] == '?') { /* presence of an element */
        if (xml_exists(x, node, fields[f].expr + 1)) vs_feature_set(doc, key, "yes", "domain XML");
      } else {
        set_from(x, node, doc, key, fields[f].expr);
      }
      free(key);
    }
    free(id);
  }
  sym_xmlXPathFreeObject(o);
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* The domain-wide settings: type, CPU, OS and boot, clock, lifecycle actions, memory. */
static void set_domain(struct xml *x, struct vs_feature *doc) {
  static const struct field top[] = {
      {"vm:type", "/domain/@type"},
      {"vm:vcpu", "/domain/vcpu"},
      {"vm:vcpu/current", "/domain/vcpu/@current"},
      {"vm:vcpu/placement", "/domain/vcpu/@placement"},
      {"vm:os/type", "/domain/os/type"},
      {"vm:os/arch", "/domain/os/type/@arch"},
      {"vm:os/machine", "/domain/os/type/@machine"},
      {"vm:os/loader", "/domain/os/loader"},
      {"vm:os/loader/type", "/domain/os/loader/@type"},
      {"vm:os/loader/secure", "/domain/os/loader/@secure"},
      {"vm:os/nvram/template", "/domain/os/nvram/@template"},
      {"vm:os/boot", "/domain/os/boot[1]/@dev"},
      {"vm:cpu/mode", "/domain/cpu/@mode"},
      {"vm:cpu/model", "/domain/cpu/model"},
      {"vm:cpu/sockets", "/domain/cpu/topology/@sockets"},
      {"vm:cpu/cores", "/domain/cpu/topology/@cores"},
      {"vm:cpu/threads", "/domain/cpu/topology/@threads"},
      {"vm:clock/offset", "/domain/clock/@offset"},
      {"vm:on_poweroff", "/domain/on_poweroff"},
      {"vm:on_reboot", "/domain/on_reboot"},
      {"vm:on_crash", "/domain/on_crash"},
      {"vm:memory_backing/hugepages", "name(/domain/memoryBacking/hugepages)"},
      {"vm:iothreads", "/domain/iothreads"},
  };
  for (size_t i = 0; i < N(top); i++)
    set_from(x, NULL, doc, top[i].name, top[i].expr);
  set_memory(x, doc, "vm:memory", "memory");
  set_memory(x, doc, "vm:current_memory", "currentMemory");
}

/* Firmware is said outright (firmware="efi") or implied by a pflash loader; each hypervisor
 * feature is on, or its state. */
static void set_firmware_features(struct xml *x, struct vs_feature *doc) {
  char *fw = xml_string(x, NULL, "/domain/os/@firmware");
  if (!fw)
    fw = vs_xstrdup(xml_exists(x, NULL, "/domain/os/loader[@type='pflash']") ? "efi" : "bios");
  vs_feature_set(doc, "vm:os/firmware", fw, "domain XML");
  free(fw);
  xmlXPathObjectPtr feats = xml_nodes(x, "/domain/features/*");
  for (int i = 0; feats && i < feats->nodesetval->nodeNr; i++) {
    xmlNodePtr node = feats->nodesetval->nodeTab[i];
    char *key = vs_xasprintf("vm:features/%s", (const char *)node->name);
    char *state = xml_string(x, node, "@state");
    vs_feature_set(doc, key, state ? state : "on", "domain XML");
    free(state);
    free(key);
  }
  sym_xmlXPathFreeObject(feats);
}

/* Each device of the kinds that set one VM apart from another, keyed by its identity. */
static void set_all_devices(struct xml *x, struct vs_feature *doc) {
  static const struct field disk[] = {
      {"device", "@device"},          {"type", "@type"},
      {"bus", "target/@bus"},         {"format", "driver/@type"},
      {"cache", "driver/@cache"},     {"io", "driver/@io"},
      {"discard", "driver/@discard"}, {"readonly", "?readonly"},
      {"shareable", "?shareable"},    {"source", "source/@file | source/@dev | source/@name"},
      {"serial", "serial"},           {"boot", "boot/@order"}};
  set_devices(x, doc, "disk", "/domain/devices/disk", "target/@dev", disk, N(disk));
  static const struct field iface[] = {{"type", "@type"},
                                       {"model", "model/@type"},
                                       {"source", "source/@network | source/@bridge | source/@dev"},
                                       {"mac", "mac/@address"},
                                       {"driver", "driver/@name"},
                                       {"link", "link/@state"},
                                       {"filter", "filterref/@filter"}};
  set_devices(x, doc, "interface", "/domain/devices/interface", NULL, iface, N(iface));
  static const struct field graphics[] = {{"type", "@type"},
                                          {"listen", "@listen | listen/@address"},
                                          {"autoport", "@autoport"},
                                          {"keymap", "@keymap"}};
  set_devices(x, doc, "graphics", "/domain/devices/graphics", NULL, graphics, N(graphics));
  static const struct field channel[] = {{"type", "@type"}, {"target", "target/@type"}};
  set_devices(x, doc, "channel", "/domain/devices/channel", "target/@name", channel, N(channel));
  static const struct field model[] = {{"model", "model/@type | @model"}};
  set_devices(x, doc, "video", "/domain/devices/video", NULL, model, N(model));
  set_devices(x, doc, "sound", "/domain/devices/sound", NULL, model, N(model));
  set_devices(x, doc, "memballoon", "/domain/devices/memballoon", NULL, model, N(model));
  static const struct field rng[] = {{"model", "@model"}, {"backend", "backend"}};
  set_devices(x, doc, "rng", "/domain/devices/rng", NULL, rng, N(rng));
  static const struct field tpm[] = {{"model", "@model"}, {"version", "backend/@version"}};
  set_devices(x, doc, "tpm", "/domain/devices/tpm", NULL, tpm, N(tpm));
  static const struct field watchdog[] = {{"model", "@model"}, {"action", "@action"}};
  set_devices(x, doc, "watchdog", "/domain/devices/watchdog", NULL, watchdog, N(watchdog));
  static const struct field ctrl[] = {{"model", "@model"}};
  set_devices(x, doc, "controller", "/domain/devices/controller", "concat(@type, @index)", ctrl,
              N(ctrl));
  static const struct field hostdev[] = {{"type", "@type"}, {"mode", "@mode"}};
  set_devices(x, doc, "hostdev", "/domain/devices/hostdev", NULL, hostdev, N(hostdev));
}

int vs_virt_xml_settings(const char *text, const char *what, struct vs_feature *doc,
                         struct vs_err *err) {
  struct xml x;
  if (xml_parse(text, what, &x, err) < 0) return -1;
  set_domain(&x, doc);
  set_firmware_features(&x, doc);
  set_all_devices(&x, doc);
  xml_free(&x);
  return 0;
}

int vs_virt_xml_disks(const char *text, const char *what, struct vs_disk **out, size_t *n,
                      char **skipped, struct vs_err *err) {
  struct xml x;
  *out = NULL;
  *n = 0;
  *skipped = NULL;
  if (xml_parse(text, what, &x, err) < 0) return -1;
  xmlXPathObjectPtr o = xml_nodes(&x, "/domain/devices/disk");
  int count = o ? o->nodesetval->nodeNr : 0;
  struct vs_disk *disks = vs_xcalloc((size_t)count + 1, sizeof(*disks));
  struct vs_buf skip = {0};
  for (int i = 0; i < count; i++) {
    xmlNodePtr node = o->nodesetval->nodeTab[i];
    char *device = xml_string(&x, node, "@device"), *type = xml_string(&x, node, "@type");
    char *target = xml_string(&x, node, "target/@dev");
    char *path = xml_string(&x, node, "source/@file | source/@dev");
    bool usable = (!device || strcmp(device, "disk") == 0) && type &&
                  (strcmp(type, "file") == 0 || strcmp(type, "block") == 0) && path && target;
    if (usable) {
      struct vs_disk *d = &disks[(*n)++];
      d->target = target;
      d->path = path;
      d->format = xml_string(&x, node, "driver/@type");
      d->readonly = xml_exists(&x, node, "readonly");
      target = path = NULL;
    } else if (!device || strcmp(device, "disk") == 0) {
      vs_buf_addf(&skip, "%s%s (%s disk)", skip.len ? ", " : "", target ? target : "?",
                  type ? type : "untyped");
    }
    free(device);
    free(type);
    free(target);
    free(path);
  }
  sym_xmlXPathFreeObject(o);
  xml_free(&x);
  *out = disks;
  *skipped = skip.len ? vs_buf_steal(&skip) : NULL;
  vs_buf_free(&skip);
  return 0;
}

char *vs_virt_agent_spec(struct vs_virt *v, const char *xml) {
  const char *type = v ? sym_virConnectGetType(v->conn) : NULL;
  if (type && strcmp(type, "QEMU") == 0) return vs_xstrdup("libvirt");
  struct xml x;
  if (!xml || xml_parse(xml, "domain", &x, NULL) < 0) return vs_xstrdup("libvirt");
  xmlXPathObjectPtr o =
      xml_nodes(&x, "/domain/devices/channel[@type='unix']"
                    "[target/@type='virtio'][target/@name='org.qemu.guest_agent.0']");
  char *path = o && o->nodesetval && o->nodesetval->nodeNr > 0
                   ? xml_string(&x, o->nodesetval->nodeTab[0], "source/@path")
                   : NULL;
  sym_xmlXPathFreeObject(o);
  xml_free(&x);
  char *spec = path && path[0] == '/' ? vs_xasprintf("unix:%s", path) : vs_xstrdup("libvirt");
  free(path);
  return spec;
}

void vs_disks_free(struct vs_disk *d, size_t n) {
  for (size_t i = 0; d && i < n; i++) {
    free(d[i].target);
    free(d[i].path);
    free(d[i].format);
  }
  free(d);
}

/* ---------------------------------------------------------------------------- backup */

struct vs_backup {
  virDomainPtr dom;
  double frozen_seconds; /* from the freeze's return to the thaw's */
  char *name;            /* for messages */
  char *dir, *socket;
  char **scratch;
  size_t n_scratch;
  bool running;
};

/* Every disk target of the domain's live XML X. */
static char **all_targets(struct xml *x, size_t *n) {
  *n = 0;
  xmlXPathObjectPtr o = xml_nodes(x, "/domain/devices/disk/target/@dev");
  int count = o ? o->nodesetval->nodeNr : 0;
  char **t = vs_xcalloc((size_t)count + 1, sizeof(char *));
  for (int i = 0; i < count; i++) {
    xmlChar *v = sym_xmlNodeGetContent(o->nodesetval->nodeTab[i]);
    if (v) t[(*n)++] = vs_xstrdup((const char *)v);
    (*sym_xmlFree)(v);
  }
  sym_xmlXPathFreeObject(o);
  return t;
}

/* Whom libvirt's DAC driver hands the domain's images to (the live XML's dac seclabel:
 * imagelabel, else label, "+UID:+GID"): false when it names nobody that way. */
static bool dac_owner(struct xml *x, uid_t *uid, gid_t *gid) {
  char *label = xml_string(x, NULL, "/domain/seclabel[@model='dac']/imagelabel");
  if (!label) label = xml_string(x, NULL, "/domain/seclabel[@model='dac']/label");
  unsigned u, g;
  char end;
  bool found = label && sscanf(label, "+%u:+%u%c", &u, &g, &end) == 2;
  free(label);
  if (found) {
    *uid = (uid_t)u;
    *gid = (gid_t)g;
  }
  return found;
}

/* TARGET's scratch file at PATH, made before the guest is frozen (libvirt would make it while
 * the guest is frozen, QEMU's blockdev-create jobs waited for one by one): an empty qcow2 image
 * of the disk's size (QEMU's backup job refuses another), no backing file (libvirt gives it the
 * disk as its backing node), owned by QEMU's user when the domain names one. */
static int make_scratch(struct vs_backup *b, const char *target, const char *path, bool owned,
                        uid_t uid, gid_t gid, struct vs_err *err) {
  virDomainBlockInfo info;
  if (sym_virDomainGetBlockInfo(b->dom, target, &info, 0) < 0) {
    char *disk = vs_xasprintf("%s: disk %s", b->name, target);
    libvirt_error(err, "%s: its size is unknown", disk);
    free(disk);
    return -1;
  }
  if (vs_qcow2new_empty(path, info.capacity, 0600, err) < 0) return -1;
  if (owned && chown(path, uid, gid) < 0)
    return vs_err_set(err, errno, "%s: cannot give the scratch file %s to QEMU's user %u:%u: %s",
                      b->name, path, (unsigned)uid, (unsigned)gid, strerror(errno));
  return 0;
}

static bool is_listed(const char *const *targets, size_t n, const char *t) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(targets[i], t) == 0) return true;
  return false;
}

void vs_virt_backup_end(struct vs_backup *b) {
  if (!b) return;
  if (b->running && sym_virDomainAbortJob(b->dom) < 0)
    vs_log(VS_LOG_WARNING, "%s: ending the backup job failed: %s", b->name,
           sym_virGetLastErrorMessage());
  for (size_t i = 0; i < b->n_scratch; i++) {
    unlink(b->scratch[i]);
    free(b->scratch[i]);
  }
  free(b->scratch);
  if (b->socket) unlink(b->socket);
  if (b->dir && rmdir(b->dir) < 0 && errno != ENOENT)
    vs_log(VS_LOG_WARNING, "%s: cannot remove %s: %s", b->name, b->dir, strerror(errno));
  free(b->socket);
  free(b->dir);
  free(b->name);
  if (b->dom) sym_virDomainFree(b->dom);
  free(b);
}

/* A pull-mode backup job of ours that nobody ends any more (libvirtd restarted, or the process
 * that began it died, between its begin and end) would refuse every later one ("already in
 * progress"): end it. Ours is known by its NBD socket under DIR/vmscope-backup-*; a job of
 * anyone else is left alone, and the begin that follows fails saying so. */
static void end_stale_backup(struct vs_backup *b, const char *dir) {
  char *xml = sym_virDomainBackupGetXMLDesc(b->dom, 0);
  if (!xml) {
    sym_virResetLastError(); /* no backup job: the usual case */
    return;
  }
  char *mine = vs_xasprintf("socket='%s/vmscope-backup-", dir);
  char *mine_dq = vs_xasprintf("socket=\"%s/vmscope-backup-", dir);
  if (strstr(xml, mine) || strstr(xml, mine_dq)) {
    vs_log(VS_LOG_WARNING, "%s: ending a backup job an earlier snapshot left running", b->name);
    if (sym_virDomainAbortJob(b->dom) < 0)
      vs_log(VS_LOG_WARNING, "%s: ending it failed: %s", b->name, sym_virGetLastErrorMessage());
  }
  free(mine);
  free(mine_dq);
  free(xml);
}

/* Guests this process froze and could not thaw (libvirtd went away between the freeze and the
 * thaw): each is thawed before its next snapshot, on whatever connection is open then. Only
 * these are thawed; a freeze someone else made is theirs to end. */
static pthread_mutex_t owed_lock = PTHREAD_MUTEX_INITIALIZER;
static char **owed_thaws;
static size_t n_owed_thaws;

static void owe_thaw(const char *uuid) {
  pthread_mutex_lock(&owed_lock);
  bool known = false;
  for (size_t i = 0; i < n_owed_thaws && !known; i++)
    known = strcmp(owed_thaws[i], uuid) == 0;
  if (!known) vs_strv_add(&owed_thaws, &n_owed_thaws, uuid);
  pthread_mutex_unlock(&owed_lock);
}

/* Whether UUID is owed a thaw; taken off the list when TAKE. */
static bool owed_thaw(const char *uuid, bool take) {
  pthread_mutex_lock(&owed_lock);
  bool owed = false;
  for (size_t i = 0; i < n_owed_thaws && !owed; i++) {
    if (strcmp(owed_thaws[i], uuid) != 0) continue;
    owed = true;
    if (!take) break;
    free(owed_thaws[i]);
    owed_thaws[i] = owed_thaws[--n_owed_thaws];
    if (n_owed_thaws == 0) {
      free(owed_thaws);
      owed_thaws = NULL;
    }
  }
  pthread_mutex_unlock(&owed_lock);
  return owed;
}

/* Thaws B's guest when an earlier snapshot of ours left it frozen. */
static void settle_thaw(struct vs_backup *b, const char *uuid) {
  if (!owed_thaw(uuid, false)) return;
  if (sym_virDomainFSThaw(b->dom, NULL, 0, 0) < 0) {
    vs_log(VS_LOG_WARNING,
           "%s: the guest's file systems, frozen by an earlier snapshot, still cannot be thawed: "
           "%s (tried again at the next snapshot)",
           b->name, sym_virGetLastErrorMessage());
    return;
  }
  owed_thaw(uuid, true);
  vs_log(VS_LOG_WARNING,
         "%s: thawed the guest's file systems, which an earlier snapshot froze and could not "
         "thaw (libvirtd went away)",
         b->name);
}

/* B's job in BX: TARGETS backed up, each onto its scratch file (made here, in B's directory),
 * every other disk of the domain left out. */
static int prepare_job(struct vs_backup *b, const char *const *targets, size_t n, struct vs_buf *bx,
                       struct vs_err *err) {
  char *xml = sym_virDomainGetXMLDesc(b->dom, 0);
  struct xml x;
  bool parsed = xml && xml_parse(xml, b->name, &x, NULL) == 0;
  free(xml);
  size_t n_all = 0;
  char **all = parsed ? all_targets(&x, &n_all) : NULL;
  uid_t uid = 0;
  gid_t gid = 0;
  bool owned = parsed && dac_owner(&x, &uid, &gid);
  if (parsed) xml_free(&x);
  vs_buf_addf(bx, "<domainbackup mode='pull'><server transport='unix' socket='%s'/><disks>",
              b->socket);
  b->scratch = vs_xcalloc(n + 1, sizeof(char *));
  int made = 0;
  for (size_t i = 0; i < n && made == 0; i++) {
    b->scratch[b->n_scratch] = vs_xasprintf("%s/%s.scratch", b->dir, targets[i]);
    const char *path = b->scratch[b->n_scratch++];
    made = make_scratch(b, targets[i], path, owned, uid, gid, err);
    vs_buf_addf(bx, "<disk name='%s' backup='yes' type='file'><scratch file='%s'/></disk>",
                targets[i], path);
  }
  for (size_t i = 0; i < n_all; i++)
    if (!is_listed(targets, n, all[i])) vs_buf_addf(bx, "<disk name='%s' backup='no'/>", all[i]);
  vs_buf_adds(bx, "</disks></domainbackup>");
  for (size_t i = 0; i < n_all; i++)
    free(all[i]);
  free(all);
  return made;
}

struct vs_backup *vs_virt_backup_begin(struct vs_virt *v, const char *uuid,
                                       const char *const *targets, size_t n, const char *dir,
                                       bool *quiesced, struct vs_err *err) {
  *quiesced = false;
  struct vs_backup *b = vs_xcalloc(1, sizeof(*b));
  b->dom = sym_virDomainLookupByUUIDString(v->conn, uuid);
  if (!b->dom) {
    libvirt_error(err, "domain %s is gone", uuid);
    vs_virt_backup_end(b);
    return NULL;
  }
  const char *name = sym_virDomainGetName(b->dom);
  b->name = vs_xstrdup(name ? name : uuid);
  settle_thaw(b, uuid);
  end_stale_backup(b, dir);
  char *tmpl = vs_xasprintf("%s/vmscope-backup-XXXXXX", dir);
  if (!mkdtemp(tmpl)) {
    vs_err_set(err, errno, "%s: cannot create a backup directory in %s: %s", b->name, dir,
               strerror(errno));
    free(tmpl);
    vs_virt_backup_end(b);
    return NULL;
  }
  b->dir = tmpl;
  /* QEMU, running as its own user, creates the socket here; nobody else can list it. */
  chmod(b->dir, 0733);
  b->socket = vs_xasprintf("%s/nbd.sock", b->dir);
  if (strlen(b->socket) >= 108) {
    vs_err_set(err, ENAMETOOLONG, "%s: the NBD socket path %s is too long for a unix socket",
               b->name, b->socket);
    vs_virt_backup_end(b);
    return NULL;
  }
  struct vs_buf bx = {0};
  if (prepare_job(b, targets, n, &bx, err) < 0) {
    vs_buf_free(&bx);
    vs_virt_backup_end(b);
    return NULL;
  }

  /* Freeze through the agent if there is one: then the point in time is a consistent one. */
  double t0 = vs_now_monotonic();
  *quiesced = sym_virDomainFSFreeze(b->dom, NULL, 0, 0) >= 0;
  double frozen_at = vs_now_monotonic();
  if (!*quiesced)
    vs_log(VS_LOG_DEBUG, "%s: no file system freeze (%s); the backup is crash-consistent", b->name,
           sym_virGetLastErrorMessage());
  /* The scratch files are ours (made above, removed by vs_virt_backup_end): libvirt only labels
   * them for QEMU and back. */
  int rc = sym_virDomainBackupBegin(b->dom, bx.data, NULL, VIR_DOMAIN_BACKUP_BEGIN_REUSE_EXTERNAL);
  if (rc < 0) libvirt_error(err, "%s: the backup job did not begin", b->name);
  double begun_at = vs_now_monotonic();
  if (*quiesced && sym_virDomainFSThaw(b->dom, NULL, 0, 0) < 0) {
    owe_thaw(uuid);
    vs_log(VS_LOG_WARNING,
           "%s: thawing the guest's file systems failed: %s (tried again before its next "
           "snapshot)",
           b->name, sym_virGetLastErrorMessage());
  }
  if (*quiesced) b->frozen_seconds = vs_now_monotonic() - frozen_at;
  vs_log(VS_LOG_DEBUG, "%s: the freeze took %.1f ms, the backup's begin %.1f ms, the thaw %.1f ms",
         b->name, (frozen_at - t0) * 1e3, (begun_at - frozen_at) * 1e3,
         *quiesced ? (vs_now_monotonic() - begun_at) * 1e3 : 0.0);
  vs_buf_free(&bx);
  if (rc < 0) {
    vs_virt_backup_end(b);
    return NULL;
  }
  b->running = true;
  return b;
}

double vs_backup_frozen_seconds(const struct vs_backup *b) {
  return b->frozen_seconds;
}

char *vs_backup_uri(const struct vs_backup *b, const char *target) {
  return vs_xasprintf("nbd+unix:///%s?socket=%s", target, b->socket);
}

/* ------------------------------------------------------------------------- guest agent */

int vs_virt_agent_command(struct vs_virt *v, const char *domain, const char *json, int timeout_s,
                          char **reply, int *libvirt_code, struct vs_err *err) {
  *reply = NULL;
  *libvirt_code = 0;
  virDomainPtr dom = sym_virDomainLookupByUUIDString(v->conn, domain);
  if (!dom) dom = sym_virDomainLookupByName(v->conn, domain);
  if (!dom) {
    virErrorPtr e = sym_virGetLastError();
    *libvirt_code = e ? e->code : VIR_ERR_NO_DOMAIN;
    return libvirt_error(err, "domain %s", domain);
  }
  char *r = sym_virDomainQemuAgentCommand(dom, json, timeout_s, 0);
  if (!r) {
    /* Read the error before any other libvirt call, which would reset it. */
    virErrorPtr e = sym_virGetLastError();
    *libvirt_code = e ? e->code : VIR_ERR_INTERNAL_ERROR;
    char *msg = vs_xstrdup(e && e->message ? e->message : "unknown libvirt error");
    const char *name = sym_virDomainGetName(dom);
    vs_err_set(err, EIO, "%s: guest agent: %s", name ? name : domain, msg);
    free(msg);
  }
  sym_virDomainFree(dom);
  *reply = r;
  return r ? 0 : -1;
}

static int on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *ctx) {
  (void)conn;
  (void)dom;
  (void)event;
  (void)detail;
  __atomic_add_fetch((unsigned long *)ctx, 1, __ATOMIC_RELAXED);
  return 0;
}

void vs_virt_enable_events(void) {
  /* Without libvirt there is no event loop: vs_virt_open then says why, and
   * vs_virt_watch_lifecycle that the loop did not start. */
  if (load_libvirt(NULL) < 0) return;
  pthread_once(&events_once, start_events);
}

int vs_virt_watch_lifecycle(struct vs_virt *v, unsigned long *counter, struct vs_err *err) {
  if (!events_running) return vs_err_set(err, EIO, "libvirt's event loop did not start");
  if (v->lifecycle_callback >= 0) return 0;
  v->lifecycle_callback =
      sym_virConnectDomainEventRegisterAny(v->conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                           VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), counter, NULL);
  if (v->lifecycle_callback < 0) return libvirt_error(err, "%s: lifecycle events", v->uri);
  return 0;
}

int vs_virt_monitor_command(struct vs_virt *v, const char *domain, const char *json, char **reply,
                            struct vs_err *err) {
  *reply = NULL;
  virDomainPtr dom = sym_virDomainLookupByUUIDString(v->conn, domain);
  if (!dom) dom = sym_virDomainLookupByName(v->conn, domain);
  if (!dom) return libvirt_error(err, "domain %s", domain);
  int rc = sym_virDomainQemuMonitorCommand(dom, json, reply, 0);
  if (rc < 0) libvirt_error(err, "%s: QEMU monitor", domain);
  sym_virDomainFree(dom);
  return rc < 0 ? -1 : 0;
}

bool vs_domain_selected(char *const *globs, size_t n, bool ignore, const char *name) {
  if (n == 0) return true;
  bool match = false;
  for (size_t i = 0; i < n && !match; i++)
    match = fnmatch(globs[i], name, 0) == 0;
  return match != ignore;
}

int vs_virt_block_copy_pivot(struct vs_virt *v, const char *domain, const char *target,
                             const char *dest, int timeout_s, double *pivot_seconds,
                             struct vs_err *err) {
  *pivot_seconds = 0;
  virDomainPtr dom = sym_virDomainLookupByUUIDString(v->conn, domain);
  if (!dom) dom = sym_virDomainLookupByName(v->conn, domain);
  if (!dom) return libvirt_error(err, "domain %s", domain);
  if (vs_dl_load(&xml_lib, err) < 0) {
    sym_virDomainFree(dom);
    return -1;
  }
  xmlChar *esc = sym_xmlEncodeSpecialChars(NULL, (const xmlChar *)dest);
  char *xml = vs_xasprintf("<disk type='file'><source file='%s'/><driver type='qcow2'/></disk>",
                           (const char *)esc);
  (*sym_xmlFree)(esc);
  /* Shallow onto an image that exists: only the top image (what the guest wrote) is copied,
   * and the destination's own backing chain is what the guest sees below it from now on.
   * A transient job: libvirt would otherwise refuse persistent domains on older QEMU, and we
   * wait for it here rather than leave it to be recovered. */
  unsigned flags = VIR_DOMAIN_BLOCK_COPY_SHALLOW | VIR_DOMAIN_BLOCK_COPY_REUSE_EXT |
                   VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB;
  int rc = sym_virDomainBlockCopy(dom, target, xml, NULL, 0, flags);
  free(xml);
  if (rc < 0) {
    char *what = vs_xasprintf("%s: disk %s: block copy onto %s", domain, target, dest);
    libvirt_error(err, "%s", what);
    free(what);
    sym_virDomainFree(dom);
    return -1;
  }
  /* Ready when the mirror has caught up: libvirt reports cur == end only then. The pivot is
   * retried while QEMU says the job is not ready yet. */
  double deadline = vs_now_monotonic() + timeout_s;
  bool pivoted = false;
  char *why = NULL;
  while (!pivoted && vs_now_monotonic() < deadline) {
    virDomainBlockJobInfo info;
    int r = sym_virDomainGetBlockJobInfo(dom, target, &info, 0);
    if (r < 0) {
      why = vs_xasprintf("the job's state: %s", sym_virGetLastErrorMessage());
      break;
    }
    if (r == 0) {
      why = vs_xstrdup("the copy job ended by itself");
      break;
    }
    if (info.end > 0 && info.cur == info.end) {
      double t0 = vs_now_monotonic();
      if (sym_virDomainBlockJobAbort(dom, target, VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT) == 0) {
        *pivot_seconds = vs_now_monotonic() - t0;
        pivoted = true;
        break;
      }
      free(why);
      why = vs_xasprintf("pivot: %s", sym_virGetLastErrorMessage());
    }
    usleep(20000);
  }
  if (!pivoted) {
    if (!why) why = vs_xasprintf("the copy was not ready within %d s", timeout_s);
    sym_virDomainBlockJobAbort(dom, target, 0); /* the domain keeps running on its old chain */
    vs_err_set(err, EIO, "%s: disk %s: block copy onto %s: %s; cancelled, the disk is unchanged",
               domain, target, dest, why);
  }
  free(why);
  sym_virDomainFree(dom);
  return pivoted ? 0 : -1;
}
