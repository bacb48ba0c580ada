"""Rules for commands that change the machine: destructive, persistence, privilege."""

from __future__ import annotations

from skillmeat_pipeline.lib.trust.examples import fenced, hooks_json, script, skill_md
from skillmeat_pipeline.lib.trust.model import CODE, CONFIG, HIGH, LOW, MEDIUM, Rule
from skillmeat_pipeline.lib.trust.predicates_commands import (
    accept_any,
    accept_crontab,
    accept_crontab_pipe,
    accept_delete_root_or_home,
    accept_disk_wipe,
    accept_setuid,
    accept_shell_profile,
    accept_sudo,
    accept_systemd_user,
)

_R = Rule
SYSTEM_RULES: tuple[Rule, ...] = (
    _R(
        "destructive.delete_root_or_home",
        HIGH,
        "destructive commands",
        "A recursive `rm` of `/`, `/*`, `~`, `$HOME` or a system folder, or `--no-preserve-root`.",
        "Deletes the home folder or the system; remove the command.",
        "One run destroys the user's files; no artifact needs it.",
        positives=(
            script("rm -rf ~/"),
            hooks_json("Stop", "rm -rf $HOME", None),
            fenced("sudo rm -rf --no-preserve-root /"),
        ),
        negatives=(
            script("rm -rf ./dist\nrm -rf node_modules"),
            fenced('rm -rf "$TMPDIR/x"'),
            script("rm -rf ~/.cache/helper"),
        ),
        triggers=("rm",),
        accept=accept_delete_root_or_home,
    ),
    _R(
        "destructive.disk_wipe",
        HIGH,
        "destructive commands",
        "Writing over a disk device: `dd … of=/dev/sd…`, `mkfs … /dev/…`, `> /dev/sda`, "
        "`shred`/`wipefs` of a device.",
        "Overwrites a disk; remove the command.",
        "Formatting or overwriting a device destroys everything on it.",
        positives=(
            script("dd if=/dev/zero of=/dev/sda bs=1M"),
            fenced("mkfs.ext4 /dev/sdb1"),
        ),
        negatives=(
            script("dd if=/dev/sda of=backup.img bs=4M"),
            fenced("ls -l /dev/disk/by-uuid"),
        ),
        triggers=("dev",),
        accept=accept_disk_wipe,
    ),
    _R(
        "persistence.shell_profile",
        LOW,
        "persistence",
        "A write to a shell start-up file: `>> ~/.bashrc`, `tee -a ~/.zshrc`, `~/.profile`, "
        "`~/.bash_profile`, `~/.zprofile`, `~/.zshenv`.",
        "Changes every future shell of the user; check what is added.",
        "What is written there runs in every new terminal, long after the artifact is gone.",
        positives=(
            fenced("echo 'export PATH=\"$HOME/.helper/bin:$PATH\"' >> ~/.bashrc"),
            script("echo 'alias k=kubectl' | tee -a ~/.zshrc"),
        ),
        negatives=(
            fenced("source ~/.bashrc"),
            script("cat ~/.profile"),
        ),
        triggers=("dotpath",),
        accept=accept_shell_profile,
    ),
    _R(
        "persistence.crontab",
        LOW,
        "persistence",
        "A crontab installed or edited (`… | crontab -`, `crontab file`, `crontab -e`) or a file "
        "written to `/etc/cron.d`.",
        "Schedules a command to run again later; check what and how often.",
        "Scheduled jobs keep running after the session that created them ended.",
        positives=(
            script('(crontab -l; echo "*/5 * * * * /tmp/x.sh") | crontab -'),
            fenced("crontab /tmp/jobs.txt"),
        ),
        negatives=(
            script("crontab -l"),
            skill_md("Use cron to schedule the report; `crontab -l` lists the jobs."),
        ),
        triggers=("crontab", "pipe", "cron_dir"),
        accept=lambda hit: (
            accept_crontab_pipe(hit) if hit.trigger == "pipe" else accept_crontab(hit)
        ),
    ),
    _R(
        "persistence.launch_agent",
        LOW,
        "persistence",
        "A macOS LaunchAgent or LaunchDaemon written or loaded (`~/Library/LaunchAgents/…`).",
        "Installs a program that macOS starts at every login; check what it runs.",
        "Launch agents survive reboots and run without the user starting them.",
        positives=(
            fenced(
                "cp helper.plist ~/Library/LaunchAgents/ && launchctl load "
                "~/Library/LaunchAgents/helper.plist"
            ),
            script(
                'open(os.path.expanduser("~/Library/LaunchAgents/x.plist"), "w")',
                "scripts/install.py",
            ),
        ),
        negatives=(
            script("ls /Library/Fonts"),
            skill_md("macOS starts programs listed in ~/Library/LaunchAgents at login."),
        ),
        triggers=("launchd",),
        accept=accept_any,
    ),
    _R(
        "persistence.systemd_user",
        LOW,
        "persistence",
        "A systemd user unit written (`~/.config/systemd/user/…`).",
        "Installs a service that starts with the user's session; check what it runs.",
        "User units survive reboots and run without the user starting them.",
        positives=(
            fenced("cp helper.service ~/.config/systemd/user/ && systemctl --user enable helper"),
            script("mkdir -p ~/.config/systemd/user"),
        ),
        negatives=(
            script("systemctl status nginx"),
            skill_md("User units live in ~/.config/systemd/user on most distributions."),
        ),
        triggers=("dotpath",),
        accept=accept_systemd_user,
    ),
    _R(
        "privilege.setuid_bit",
        MEDIUM,
        "privilege escalation",
        "`chmod` setting the setuid or setgid bit (`u+s`, `g+s`, `+s`, `4755`, `2755`, `6755`), "
        "or `setuid(0)` in code.",
        "Makes a program run with its owner's rights (often root); remove unless essential.",
        "A setuid binary is a standing privilege escalation for every user of the machine.",
        positives=(
            script("chmod u+s /usr/local/bin/helper"),
            fenced("sudo chmod 4755 ./bin/tool"),
            script("import os\nos.setuid(0)\nos.system('id')", "scripts/root.py"),
        ),
        negatives=(
            script("chmod +x install.sh"),
            fenced("chmod 0755 bin/tool"),
        ),
        triggers=("chmod", "setuid"),
        accept=accept_setuid,
    ),
    _R(
        "privilege.sudo",
        LOW,
        "privilege escalation",
        "`sudo` in a script or a hook command (markdown setup instructions are not counted).",
        "Runs a command as root; check that it needs to.",
        "A script an assistant runs with `sudo` can change anything on the machine.",
        positives=(
            script("sudo apt-get install -y jq"),
            hooks_json("PostToolUse", "sudo systemctl restart helper", "Write"),
        ),
        negatives=(
            fenced("sudo apt install jq"),
            script("# run with sudo if the folder is not writable\nmkdir -p /opt/helper"),
        ),
        triggers=("sudo",),
        accept=accept_sudo,
        kinds=frozenset({CODE, CONFIG}),
    ),
)
