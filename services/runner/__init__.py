"""``owc run``: embedded Redis + the four services as supervised child processes."""
