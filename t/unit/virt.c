#include "fixture.h"
#include "tap.h"
#include "virt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char node_xml[] =
    "<node>\n"
    " <domain type='test'>\n"
    "  <name>web-01</name><uuid>6695eb01-f6a4-8304-79aa-97f2502e193f</uuid>\n"
    "  <memory unit='MiB'>512</memory><vcpu>2</vcpu>\n"
    "  <os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type>\n"
    "   <loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE.fd</loader></os>\n"
    "  <features><acpi/><apic/></features>\n"
    "  <devices>\n"
    "   <disk type='file' device='disk'><driver name='qemu' type='qcow2' cache='none'/>\n"
    "    <source file='/var/lib/libvirt/images/web-01.qcow2'/><target dev='vda' bus='virtio'/>"
    "</disk>\n"
    "   <disk type='file' device='cdrom'><source file='/srv/iso/d.iso'/>"
    "<target dev='sda' bus='sata'/><readonly/></disk>\n"
    "   <disk type='network' device='disk'><source protocol='rbd' name='pool/img'/>"
    "<target dev='vdb' bus='virtio'/></disk>\n"
    "   <interface type='network'><source network='default'/><mac address='52:54:00:00:00:01'/>"
    "<model type='virtio'/></interface>\n"
    "   <graphics type='vnc' port='-1' passwd='s3cret'/>\n"
    "   <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>\n"
    "  </devices>\n"
    " </domain>\n"
    " <domain type='test'>\n"
    "  <name>db-01</name><uuid>6695eb01-f6a4-8304-79aa-97f2502e1940</uuid>\n"
    "  <memory unit='GiB'>2</memory><vcpu>4</vcpu><os><type>hvm</type></os>\n"
    " </domain>\n"
    "</node>\n";

int main(void) {
  plan_no_plan();
  char *dir = fx_tmpdir();
  fx_write(dir, "node.xml", node_xml);
  char *uri = NULL;
  if (asprintf(&uri, "test://%s/node.xml", dir) < 0) return 2;
  struct vs_err err = {0};
  struct vs_virt *v = vs_virt_open(uri, true, &err);
  ok(v != NULL, "libvirt's test driver opens a generated node XML (%s)", err.msg ? err.msg : "ok");
  struct vs_domain *doms = NULL;
  size_t n = 0;
  ok(v && vs_virt_domains(v, &doms, &n, &err) == 0 && n == 2, "it lists two domains");
  is_str(n == 2 ? doms[0].name : NULL, "db-01", "sorted by name");
  is_str(n == 2 ? doms[1].uuid : NULL, "6695eb01-f6a4-8304-79aa-97f2502e193f", "with their uuids");
  ok(n == 2 && doms[1].active && doms[1].xml && strstr(doms[1].xml, "<domain"), "and their XML");
  ok(v && vs_virt_alive(v), "the connection is alive");

  struct vs_feature *doc = vs_feature_new();
  ok(n == 2 && vs_virt_xml_settings(doms[1].xml, "web-01", doc, &err) == 0,
     "the domain XML gives settings");
#define HAS(k, v) is_str(vs_feature_get(doc, k), v, "%s = %s", k, v)
  HAS("vm:vcpu", "2");
  HAS("vm:memory", "524288");
  HAS("vm:os/machine", "pc-q35-7.2");
  HAS("vm:os/firmware", "efi");
  HAS("vm:features/acpi", "on");
  HAS("vm:devices/disk[vda]/bus", "virtio");
  HAS("vm:devices/disk[vda]/format", "qcow2");
  HAS("vm:devices/disk[vda]/cache", "none");
  HAS("vm:devices/disk[sda]/device", "cdrom");
  HAS("vm:devices/disk[sda]/readonly", "yes");
  HAS("vm:devices/interface[1]/model", "virtio");
  HAS("vm:devices/interface[1]/source", "default");
  HAS("vm:devices/graphics[1]/type", "vnc");
  HAS("vm:devices/channel[org.qemu.guest_agent.0]/target", "virtio");
  size_t nk;
  const char **keys = vs_feature_keys(doc, &nk);
  bool secret = false;
  for (size_t i = 0; i < nk; i++)
    secret |= strstr(vs_feature_get(doc, keys[i]), "s3cret") != NULL;
  free(keys);
  ok(!secret, "the VNC password is never copied");
  vs_feature_free(doc);

  struct vs_feature *db = vs_feature_new();
  ok(n == 2 && vs_virt_xml_settings(doms[0].xml, "db-01", db, &err) == 0, "db-01's settings");
  is_str(vs_feature_get(db, "vm:memory"), "2097152", "memory in KiB whatever the unit (2 GiB)");
  is_str(vs_feature_get(db, "vm:os/firmware"), "bios", "no loader: bios");
  vs_feature_free(db);

  struct vs_disk *disks = NULL;
  size_t nd = 0;
  char *skipped = NULL;
  ok(n == 2 && vs_virt_xml_disks(doms[1].xml, "web-01", &disks, &nd, &skipped, &err) == 0 &&
         nd == 1,
     "one disk to read: the file-backed one");
  is_str(nd ? disks[0].path : NULL, "/var/lib/libvirt/images/web-01.qcow2", "its path");
  is_str(nd ? disks[0].format : NULL, "qcow2", "its format");
  ok(skipped && strstr(skipped, "vdb") && strstr(skipped, "network") && !strstr(skipped, "sda"),
     "the network disk is named as skipped; the CD-ROM is not a disk to read");
  free(skipped);
  vs_disks_free(disks, nd);

  ok(vs_virt_xml_settings("<domain><name>x</name", "broken", NULL, &err) < 0 && err.msg &&
         strstr(err.msg, "broken"),
     "a domain XML that does not parse is an error naming the domain");
  vs_err_clear(&err);
  vs_domains_free(doms, n);
  vs_virt_close(v);
  ok(vs_virt_open("test:///nonexistent/node.xml", true, &err) == NULL && err.msg &&
         strstr(err.msg, "test:///nonexistent/node.xml"),
     "a URI that does not open fails and names the URI");
  vs_err_clear(&err);
  fx_rmtree(dir);
  free(dir);
  free(uri);
  return done_testing();
}
