# initrd-remix rescue shell startup ($ENV).
PS1='rescue# '
# Without systemd as PID 1 the distribution's poweroff/reboot may have no
# init to talk to: go to the kernel directly (nothing is mounted).
if [ ! -d /run/systemd/system ]; then
	poweroff() { sync; echo o >/proc/sysrq-trigger; sleep 10; }
	halt() { poweroff; }
	reboot() { sync; echo b >/proc/sysrq-trigger; sleep 10; }
fi
