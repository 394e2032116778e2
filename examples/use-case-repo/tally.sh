#!/bin/sh
# tally.sh: sums the numbers given as arguments.
total=0
for n in "$@"; do
  total=$((total + n))
done
echo "$total"
