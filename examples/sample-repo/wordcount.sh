#!/bin/sh
# wordcount.sh: prints the number of words in each file given, then the total.
total=0
for f in "$@"; do
  n=$(wc -w < "$f")
  echo "$f $n"
  total=$((total + n))
done
echo "total $total"
