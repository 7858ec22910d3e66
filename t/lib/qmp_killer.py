#!/usr/bin/env python3
"""qmp_killer.py LISTEN QEMU_QMP COMMAND: a QMP relay that kills its client (SIGKILL, by the
peer credentials of the connection) right after QEMU has answered the client's COMMAND, so a
test can stop `vmscope patchset apply` between any two of its steps. Serves one client."""
import os, signal, socket, struct, sys

listen_path, qemu_path, step = sys.argv[1:4]
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(listen_path)
srv.listen(1)
print("ready", flush=True)
cli, _ = srv.accept()
pid = struct.unpack("3i", cli.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[0]
qemu = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
qemu.connect(qemu_path)
armed = False
bufs = {cli: b"", qemu: b""}
import select
while True:
    r, _, _ = select.select([cli, qemu], [], [])
    for s in r:
        data = s.recv(65536)
        if not data:
            sys.exit(0)
        other = qemu if s is cli else cli
        if s is cli and ('"%s"' % step).encode() in data:
            armed = True
        other.sendall(data)
        if s is qemu and armed and (b'"return"' in data or b'"error"' in data):
            os.kill(pid, signal.SIGKILL)
            print("killed %d after %s" % (pid, step), flush=True)
            sys.exit(0)
