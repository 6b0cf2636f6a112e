"""One Open vSwitch (ovsdb-server + ovs-vswitchd, userspace datapath) in a namespace of its own."""

import os
import subprocess


class SingleOvs:
    """ovsdb-server + ovs-vswitchd in a namespace of their own: a userspace
    vswitchd creates tap devices with fixed names, so two must never share one."""

    count = 0

    def __init__(self, path, vswitchd=True, managers=True):
        self.vswitchd = vswitchd    # False: ovsdb-server alone
        self.managers = managers    # False: an ovsdb-server that does not serve its Manager table
        self.dir = str(path)
        self.ns = "dvn-t%d-%d" % (os.getpid(), SingleOvs.count)
        SingleOvs.count += 1
        self.env = dict(os.environ, OVS_RUNDIR=self.dir, OVS_DBDIR=self.dir, OVS_LOGDIR=self.dir)
        self.db = "unix:%s/db.sock" % self.dir

    def run(self, *args):
        return subprocess.run(("ip", "netns", "exec", self.ns) + args, env=self.env, check=True,
                              capture_output=True, text=True).stdout

    def start(self):
        subprocess.run(["ip", "netns", "add", self.ns], check=True)
        subprocess.run(["ip", "-n", self.ns, "link", "set", "lo", "up"], check=True)
        self.run("ovsdb-tool", "create", self.dir + "/conf.db", "/usr/share/openvswitch/vswitch.ovsschema")
        managers = ["--remote=db:Open_vSwitch,Open_vSwitch,manager_options"] if self.managers else []
        self.run("ovsdb-server", self.dir + "/conf.db", "-vconsole:off", "--remote=punix:" + self.dir + "/db.sock",
                 *managers, "--pidfile", "--detach", "--no-chdir", "--log-file")
        self.run("ovs-vsctl", "--no-wait", "init")
        if self.vswitchd:
            self.run("ovs-vswitchd", self.db, "-vconsole:off", "--pidfile", "--detach", "--no-chdir",
                     "--log-file", "--disable-system")

    def stop(self):
        for name in ("ovs-vswitchd", "ovsdb-server"):
            try:
                with open("%s/%s.pid" % (self.dir, name)) as f:
                    os.kill(int(f.read()), 15)
            except (OSError, ValueError):
                pass
        subprocess.run(["ip", "netns", "del", self.ns], check=False)

    def vsctl(self, *args):
        return self.run("ovs-vsctl", *args).strip()
