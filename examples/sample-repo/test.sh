#!/bin/sh
# The sample project's test suite: plain POSIX shell, so it runs in any environment.
set -u
pass=0; fail=0
check() { # name expected actual
  if [ "$2" = "$3" ]; then pass=$((pass+1)); echo "ok   $1"; else fail=$((fail+1)); echo "FAIL $1: expected '$2', got '$3'"; fi
}
printf 'one two three\n' > /tmp/a.txt
printf 'four five\n' > /tmp/b.txt
check "counts words in one file" "/tmp/a.txt 3" "$(sh ./wordcount.sh /tmp/a.txt | head -n1)"
check "sums words across files" "total 5" "$(sh ./wordcount.sh /tmp/a.txt /tmp/b.txt | tail -n1)"
check "empty input totals zero" "total 0" "$(sh ./wordcount.sh)"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
