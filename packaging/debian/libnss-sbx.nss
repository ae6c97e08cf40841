# group: files systemd sbx.  Last: files (and systemd) answer first, so a
# group in /etc/group is never shadowed by sbx, and sbx only adds members.
group last sbx
