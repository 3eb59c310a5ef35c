# initrd-remix: sourced by dracut's /init (PID 1): hand over to the rescue
# entry point instead of mounting the root. It never returns.
exec /usr/lib/initrd-remix/rescue
