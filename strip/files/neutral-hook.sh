# initrd-remix: neutralised; a rescue image leaves storage untouched.
:
