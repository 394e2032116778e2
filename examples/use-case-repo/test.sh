#!/bin/sh
# The test suite: plain POSIX shell.
fail=0
check() { if [ "$2" = "$3" ]; then echo "ok   $1"; else echo "FAIL $1: expected $2, got $3"; fail=1; fi; }
check "sums two numbers" 5 "$(sh ./tally.sh 2 3)"
check "sums nothing to zero" 0 "$(sh ./tally.sh)"
check "sums negatives" -1 "$(sh ./tally.sh 2 -3)"
exit $fail
