"""The twin's directory for real: slapd and SSSD of the node image, in a host made as the twin
makes one (mount, network and hostname namespaces, the image under an overlay root), with no
twin. slapd listens on ldaps:// (the head's name, a certificate of the twin's CA) and ldapi://;
users are added and removed with the LDAP tools over ldapi, as ``hpctool local users`` will, and
resolve through SSSD with the sssd.conf ParallelCluster writes.

Needs root and the node image built with the directory's packages (``make setup``; another
image with ``HPCTOOL_IMAGE_DIR``)."""

from __future__ import annotations

import os
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hpctool.atomic import write_atomic
from hpctool.errors import UsageError
from hpctool.twin import daemons
from hpctool.twin.directory import (
    DirectorySettings,
    render_nsswitch,
    render_sssd_conf,
    settings_from_config,
)
from hpctool.twin.directory_run import (
    DirectoryFolder,
    DirectoryServer,
    expire_sssd_cache,
    start_sssd,
    stop_sssd,
)
from hpctool.twin.directory_users import DirectoryUsers, parse_ldif
from hpctool.twin.image import default_image, image_user
from hpctool.twin.tls import ensure_tls, make_ca
from hpctool.twin.usernames import local_ids, local_names
from support.bare_host import BareHost, connect
from support.pam_auth import PAM_AUTH

pytestmark = pytest.mark.directory

URI = "ldaps://head:636"


HEAD_ADDRESS, COMPUTE_ADDRESS = "192.0.2.10", "192.0.2.11"  # TEST-NET-1: only inside the two hosts


@dataclass
class Lab:
    host: BareHost  # the head node: slapd, sssd
    compute: BareHost  # a compute node: sssd only, reaching the head over LDAPS
    folder: DirectoryFolder
    server: DirectoryServer
    users: DirectoryUsers
    settings: DirectorySettings
    home: Path
    sssd_conf: Path
    image: Path

    def run(self, argv: list[str], input_text: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.host.run(argv, input_text=input_text)

    def ldap(self, program: str, bind_dn: str, password_file: Path, *args: str,
             ca: Path | None = None, uri: str = URI, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
        """An LDAP tool on the head as a client over the network would run it: simple bind."""
        return self.run(["env", f"LDAPTLS_CACERT={ca or self.folder.tls.ca_cert}", "LDAPTLS_REQCERT=hard",
                         program, "-x", "-H", uri, "-D", bind_dn, "-y", str(password_file), *args],
                        input_text=input_text)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.fail("the directory test needs root (namespaces, overlay, chroot), as the twin does")
    image = default_image().require()  # an image without the directory's packages is an error here
    base = tmp_path_factory.mktemp("directory")
    folder = DirectoryFolder(base / "directory")
    folder.root.mkdir()
    owner = image_user(image, "openldap")
    ensure_tls(folder.tls, ["head"], [HEAD_ADDRESS], key_owner=owner)  # the CA exists before hosts boot
    home = base / "home"
    home.mkdir()
    etc_sssd = base / "etc-sssd"
    (etc_sssd / "conf.d").mkdir(parents=True)
    os.chmod(etc_sssd, 0o711)
    hosts = base / "hosts"
    hosts.write_text(f"127.0.0.1 localhost\n{HEAD_ADDRESS} head\n{COMPUTE_ADDRESS} compute-1\n")
    nsswitch = base / "nsswitch.conf"
    nsswitch.write_text(render_nsswitch((image / "etc/nsswitch.conf").read_text()))
    settings = settings_from_config(None, uri=URI)
    # What the twin binds into every host: /home, /etc/sssd, the hosts file, nsswitch.conf and
    # the CA at sssd.conf's ldap_tls_cacert; the head also sees the directory's folder.
    every = {"/home": home, "/etc/sssd": etc_sssd, "/etc/hosts": hosts, "/etc/nsswitch.conf": nsswitch,
             settings.ca_cert: folder.tls.ca_cert}
    host = BareHost(image, base / "head", {**every, str(folder.root): folder.root}, hostname="head")
    compute = BareHost(image, base / "compute", every, hostname="compute-1")
    try:
        host.boot()
        compute.boot()
        connect(host, compute, HEAD_ADDRESS, COMPUTE_ADDRESS)
        server = DirectoryServer(folder, settings, host.exec_argv, owner)
        assert server.prepare(["head"], [HEAD_ADDRESS]) is True
        server.start(HEAD_ADDRESS, 636)
        files = [(image / "etc/passwd").read_text(), (image / "etc/group").read_text()]
        users = DirectoryUsers(server, reserved=set().union(*map(local_names, files)),
                               taken_ids=set().union(*map(local_ids, files)))
        sssd_conf = etc_sssd / "sssd.conf"
        write_atomic(sssd_conf, render_sssd_conf(settings, folder.read_only_password.read_text()), mode=0o600)
        lab = Lab(host, compute, folder, server, users, settings, home, sssd_conf, image)
        users.add("alice", group="lab")
        users.add("bob")
        start_sssd(host.exec_argv, base / "sssd-head.log", pid_file=base / "sssd-head.pid")
        start_sssd(compute.exec_argv, base / "sssd-compute.log", pid_file=base / "sssd-compute.pid")
        yield lab
        assert stop_sssd(base / "sssd-head.pid") is True
    finally:
        compute.end()
        host.end()


def passwd_entry(lab: Lab, name: str) -> list[str]:
    result = lab.run(["getent", "passwd", name])
    assert result.returncode == 0, f"getent passwd {name}: exit {result.returncode} {result.stderr}"
    return result.stdout.strip().split(":")


def test_a_user_resolves_through_sssd_with_its_uid_group_and_home(lab):
    users = {u.name: u for u in lab.users.list()}
    alice, bob = users["alice"], users["bob"]
    assert alice.uid >= 20000 and bob.uid >= 20000 and alice.uid != bob.uid
    name, _, uid, gid, _, home_dir, shell = passwd_entry(lab, "alice")
    assert (name, int(uid), int(gid), home_dir, shell) == ("alice", alice.uid, alice.gid, "/home/alice", "/bin/bash")
    ident = lab.run(["id", "alice"]).stdout
    assert f"uid={alice.uid}(alice)" in ident and f"gid={alice.gid}(lab)" in ident, ident
    # bob has a group of his own, with his uid as its number (Debian's adduser does the same)
    assert lab.run(["id", "-gn", "bob"]).stdout.strip() == "bob"
    assert int(passwd_entry(lab, "bob")[3]) == bob.uid == bob.gid
    assert lab.run(["getent", "group", "lab"]).stdout.strip() == f"lab:*:{alice.gid}:alice"


def test_a_compute_node_sees_the_same_user_over_ldaps_from_the_head(lab):
    on_head = lab.run(["getent", "passwd", "alice"]).stdout
    on_compute = lab.compute.run(["getent", "passwd", "alice"])
    assert on_compute.returncode == 0 and on_compute.stdout == on_head, on_compute
    assert lab.compute.run(["id", "alice"]).stdout == lab.run(["id", "alice"]).stdout
    # the shared /home: the same folder, owned by the same user, on every node
    assert lab.compute.run(["stat", "-c", "%U:%G %a", "/home/alice"]).stdout.strip() == "alice:lab 700"
    assert lab.compute.run(["hostname"]).stdout.strip() == "compute-1"


def test_the_home_is_the_users_own_with_an_ssh_key(lab):
    alice = next(u for u in lab.users.list() if u.name == "alice")
    info = (lab.home / "alice").stat()
    assert stat.S_IMODE(info.st_mode) == 0o700 and (info.st_uid, info.st_gid) == (alice.uid, alice.gid)
    ssh = lab.home / "alice" / ".ssh"
    assert stat.S_IMODE((ssh / "id_ed25519").stat().st_mode) == 0o600
    assert (ssh / "id_ed25519.pub").read_text() in (ssh / "authorized_keys").read_text()
    assert (ssh / "id_ed25519").stat().st_uid == alice.uid
    # the hub's password: on the machine only, readable by root only
    assert stat.S_IMODE((lab.folder.passwords / "alice").stat().st_mode) == 0o600
    assert stat.S_IMODE(lab.sssd_conf.stat().st_mode) == 0o600


def test_ldaps_verifies_with_the_twins_ca_and_nothing_else_listens(lab):
    ro, ro_password = lab.settings.read_only_dn, lab.folder.read_only_password
    ok = lab.ldap("ldapsearch", ro, ro_password, "-b", lab.settings.base_dn, "-s", "base", "dn")
    assert ok.returncode == 0, ok.stderr
    other_ca = lab.folder.root / "other-ca.crt"
    other_ca.write_text(make_ca("not the twin's CA")[1])
    refused = lab.ldap("ldapsearch", ro, ro_password, "-b", lab.settings.base_dn, "-s", "base", "dn", ca=other_ca)
    assert refused.returncode != 0 and "Can't contact LDAP server" in refused.stderr, refused
    for plain in ("ldap://head:636", "ldap://head:389"):
        result = lab.ldap("ldapsearch", ro, ro_password, "-b", lab.settings.base_dn, "-s", "base", "dn", uri=plain)
        assert result.returncode != 0, f"{plain} answered: {result.stdout}"
    listening = lab.run(["ss", "-Hltn"]).stdout.split("\n")
    ports = sorted({line.split()[3].rsplit(":", 1)[1] for line in listening if line.strip()})
    assert ports == ["636"], listening


def test_only_root_on_the_head_reaches_ldapi(lab):
    as_root = lab.run(["ldapwhoami", "-Q", "-Y", "EXTERNAL", "-H", lab.folder.ldapi_uri])
    assert as_root.stdout.strip() == f"dn:{lab.settings.admin_dn}", as_root
    as_nobody = lab.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                         "ldapwhoami", "-Q", "-Y", "EXTERNAL", "-H", lab.folder.ldapi_uri])
    assert as_nobody.returncode != 0 and "Can't contact LDAP server" in as_nobody.stderr, as_nobody


def test_slapd_runs_as_openldap(lab):
    status = Path(f"/proc/{lab.server.pid()}/status").read_text()
    uid = next(line.split()[1] for line in status.splitlines() if line.startswith("Uid:"))
    assert int(uid) == image_user(lab.image, "openldap")[0]


def test_the_read_only_user_searches_but_cannot_write(lab):
    ro, ro_password = lab.settings.read_only_dn, lab.folder.read_only_password
    found = lab.ldap("ldapsearch", ro, ro_password, "-LLL", "-b", lab.settings.people_dn, "(uid=alice)", "uidNumber")
    assert found.returncode == 0 and "uidNumber:" in found.stdout, found
    change = f"dn: {lab.settings.user_dn('alice')}\nchangetype: modify\nreplace: loginShell\nloginShell: /bin/sh\n"
    refused = lab.ldap("ldapmodify", ro, ro_password, input_text=change)
    assert refused.returncode == 50, refused  # LDAP_INSUFFICIENT_ACCESS
    assert passwd_entry(lab, "alice")[6] == "/bin/bash"


def test_no_one_reads_a_password_hash_and_a_wrong_password_is_refused(lab):
    alice_dn, bob_dn = lab.settings.user_dn("alice"), lab.settings.user_dn("bob")
    as_alice = lab.ldap("ldapsearch", alice_dn, lab.folder.passwords / "alice", "-LLL", "-b", bob_dn, "-s", "base",
                        "uid", "userPassword")
    assert as_alice.returncode == 0 and "uid: bob" in as_alice.stdout, as_alice
    assert "userPassword" not in as_alice.stdout
    as_reader = lab.ldap("ldapsearch", lab.settings.read_only_dn, lab.folder.read_only_password, "-LLL",
                         "-b", lab.settings.people_dn, "userPassword")
    assert as_reader.returncode == 0 and "userPassword" not in as_reader.stdout, as_reader
    # the hash itself is argon2, as slapd made it from the password-modify operation
    stored = lab.server.tool("ldapsearch", ["-LLL", "-b", alice_dn, "-s", "base", "userPassword"]).stdout
    hashed = parse_ldif(stored)[0]["userpassword"][0]
    assert hashed.startswith("{ARGON2}$argon2"), hashed[:16]
    assert (lab.folder.passwords / "alice").read_text() not in stored
    wrong = lab.folder.root / "wrong-password"
    write_atomic(wrong, "not-alices-password", mode=0o600)
    refused = lab.ldap("ldapwhoami", alice_dn, wrong)
    assert refused.returncode == 49, refused  # LDAP_INVALID_CREDENTIALS


def test_a_user_logs_in_through_pam_with_the_hub_password(lab):
    """pam_sss in the image's PAM stacks (sshd's service): the password is checked by a bind to
    slapd over LDAPS, as the hub's PAM authenticator will check it."""
    password = (lab.folder.passwords / "alice").read_text()
    assert lab.run(["python3", "-c", PAM_AUTH, "alice", "sshd"], input_text=password).returncode == 0
    wrong = lab.run(["python3", "-c", PAM_AUTH, "alice", "sshd"], input_text="not-" + password)
    assert wrong.returncode == 7, wrong  # PAM_AUTH_ERR
    stranger = lab.run(["python3", "-c", PAM_AUTH, "nobody-here", "sshd"], input_text=password)
    assert stranger.returncode != 0


SSHD_CONFIG = f"""\
ListenAddress {HEAD_ADDRESS}:22
HostKey /etc/ssh/ssh_host_ed25519_key
AuthorizedKeysFile .ssh/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM yes
PidFile /run/sshd-directory.pid
"""


def test_a_user_reaches_the_head_with_its_key_from_a_compute_node(lab, tmp_path):
    """What `hpctool local ssh --user` and ssh between nodes rest on: sshd on the head finds the
    user through SSSD, its key in the shared home, its account through PAM (pam_sss)."""
    key = "/etc/ssh/ssh_host_ed25519_key"
    made = lab.run(["sh", "-c", f"mkdir -p /run/sshd && {{ test -e {key} || ssh-keygen -q -t ed25519 -N '' -f {key}; }}"])
    assert made.returncode == 0, made
    assert lab.run(["sh", "-c", "cat > /etc/ssh/sshd_config.directory"], input_text=SSHD_CONFIG).returncode == 0
    sshd = daemons.spawn(lab.host.exec_argv(["/usr/sbin/sshd", "-D", "-e", "-f", "/etc/ssh/sshd_config.directory"]),
                         tmp_path / "sshd.log")
    try:
        login = ["runuser", "-u", "alice", "--", "ssh", "-i", "/home/alice/.ssh/id_ed25519", "-o", "BatchMode=yes",
                 "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                 "-o", "ConnectTimeout=5", "alice@head", "id -un; hostname; pwd"]
        for _ in range(50):  # sshd binds within a moment of its start
            result = lab.compute.run(login)
            if result.returncode != 255 or "refused" not in result.stderr:
                break
            time.sleep(0.1)
        assert result.returncode == 0, (result, (tmp_path / "sshd.log").read_text()[-800:])
        assert result.stdout.split() == ["alice", "head", "/home/alice"]
        # a user the directory does not know has no way in
        stranger = lab.compute.run(["ssh", "-i", "/home/alice/.ssh/id_ed25519", "-o", "BatchMode=yes",
                                    "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                                    "-o", "ConnectTimeout=5", "mallory@head", "true"])
        assert stranger.returncode == 255 and "Permission denied" in stranger.stderr, stranger
    finally:
        sshd.kill()
        sshd.wait()


def test_bad_reserved_and_duplicate_names_are_refused(lab):
    for name, words in (("root", "reserved"), ("openldap", "reserved"), ("alice", "already exists"),
                        ("Alice", "lower case"), ("al ice", "not a valid name"), ("a" * 33, "at most 32")):
        with pytest.raises(UsageError) as error:
            lab.users.add(name)
        assert words in str(error.value), (name, str(error.value))
    with pytest.raises(UsageError, match="already exists"):
        lab.users.add("lab")  # a group of that name exists: not a user's own group
    assert sorted(u.name for u in lab.users.list()) == ["alice", "bob"]


def test_ids_skip_local_ones_and_a_shared_group_gains_members(lab):
    listing = lab.users.listing()
    used = {u.uid for u in listing.users} | {g.gid for g in listing.groups}
    next_free = min(set(range(20000, 20100)) - used)
    users = DirectoryUsers(lab.server, taken_ids={next_free})  # a machine user has that uid
    carol = users.add("carol", group="lab")
    assert carol.user.uid not in used | {next_free} and carol.created_group is False
    lab_gid = next(g.gid for g in listing.groups if g.name == "lab")
    assert carol.user.gid == lab_gid
    # SSSD answers a group it has cached (id alice cached lab) until its cache is expired: the
    # twin expires every host's cache after a change, as after a removal
    assert lab.compute.run(["getent", "group", "lab"]).stdout.strip() == f"lab:*:{lab_gid}:alice"
    expire_sssd_cache(lab.compute.exec_argv)
    assert lab.compute.run(["getent", "group", "lab"]).stdout.strip() == f"lab:*:{lab_gid}:alice,carol"
    users.remove("carol")
    assert next(g for g in users.listing().groups if g.name == "lab").members == ("alice",)


def test_a_removed_user_stops_resolving(lab):
    bob = next(u for u in lab.users.list() if u.name == "bob")
    assert passwd_entry(lab, "bob")[2] == str(bob.uid)  # cached by SSSD now
    assert lab.compute.run(["getent", "passwd", "bob"]).returncode == 0
    lab.users.remove("bob")
    for host in (lab.host, lab.compute):
        expire_sssd_cache(host.exec_argv)
        gone = host.run(["getent", "passwd", "bob"])
        assert gone.returncode == 2, (host.hostname, gone.stdout)
    assert lab.run(["getent", "group", "bob"]).returncode == 2  # his own group went with him
    assert [u.name for u in lab.users.list()] == ["alice"]
    assert (lab.home / "bob").is_dir()  # the home stays, as in AD
    assert not (lab.folder.passwords / "bob").exists()
    assert passwd_entry(lab, "alice")[0] == "alice"


def test_a_second_start_keeps_the_directory(lab):
    assert lab.server.prepare(["head"], [HEAD_ADDRESS]) is False
    pid = lab.server.pid()
    assert lab.server.start(HEAD_ADDRESS, 636) == pid  # a running slapd is kept
    assert lab.server.stop() is True and lab.server.pid() is None
    lab.server.start(HEAD_ADDRESS, 636)
    assert [u.name for u in lab.users.list()] == ["alice"]
