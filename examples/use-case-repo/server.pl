#!/usr/bin/perl
# server.pl PORT: a minimal HTTP server on 127.0.0.1 answering GET / with a JSON status.
use strict; use warnings; use IO::Socket::INET;
my $port = shift // 8080;
my $server = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port, Listen => 5, ReuseAddr => 1) or die "listen: $!";
print "listening on 127.0.0.1:$port\n"; $| = 1;
while (my $client = $server->accept) {
  # Read the whole request head, so closing never resets a client still sending it.
  while (defined(my $line = <$client>)) { last if $line =~ /^\r?\n$/; }
  my $body = '{"status":"ok","total":' . `sh ./tally.sh 1 2 3` . '}';
  $body =~ s/\n//g;
  print $client "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: " . length($body) . "\r\n\r\n$body";
  close $client;
}
