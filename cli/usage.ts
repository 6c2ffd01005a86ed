// What `mailfleet [COMMAND] --help` prints. Each text is complete for its command; the
// top-level one lists the commands.
export const USAGE: Record<string, string> = {
  mailfleet: `usage: mailfleet <command> [options]

commands:
  relay --config FILE            run a relay (--dev: the loopback dev relay behind npm start)
  operator [options]             run the Kubernetes operator
  config check FILE              validate a relay config and the files it names
  config schema                  print the JSON Schema of the relay config
  hash-password                  read a password on stdin, print its scrypt hash
  suppression list|add|remove    show, add or lift suppressed recipient addresses
  queue list|show|retry|hold|release|delete|import   see and steer the relay's queue
  dns NAMESPACE/SENDERDOMAIN     print the DNS records a SenderDomain asks for, as a zone snippet

  mailfleet <command> --help     a command's options
  mailfleet --version            the version
`,
  relay: `usage: mailfleet relay --config FILE
       mailfleet relay --dev [--deliver]

Runs an SMTP relay until SIGTERM or SIGINT (it stops accepting, drains, exits 0);
SIGHUP re-reads the config file and the files it names.

  -c, --config FILE   the relay config (YAML; \`mailfleet config schema\` lists its fields)
      --dev           the built-in loopback config (npm start): submission with STARTTLS on
                      127.0.0.1:2587, implicit TLS on 127.0.0.1:2465, metrics on
                      http://127.0.0.1:9464, a self-signed certificate, and the login "dev"
                      for example.test; data in ./.mailfleet. Mail is not sent: each message
                      is captured as an .eml file in ./.mailfleet/captured/.
      --deliver       with --dev: deliver for real by MX lookup instead of capturing
  -h, --help          this text
`,
  dns: `usage: mailfleet dns NAMESPACE/SENDERDOMAIN [--kubeconfig FILE]

Prints the DNS records the SenderDomain asks its owner to publish (status.dnsRecords) as
zone-file lines, ready to paste: DKIM TXT records (required; long values split into
255-byte strings) and the SPF and DMARC suggestions. Reads through your kubeconfig.

      --kubeconfig FILE   [KUBECONFIG] default: ~/.kube/config, or in-cluster
  -h, --help              this text
`,
  operator: `usage: mailfleet operator [options]

Runs the operator until SIGTERM or SIGINT (see docs/operator.md). Environment variables
in brackets.

  --kubeconfig FILE            [KUBECONFIG] default: in-cluster, then ~/.kube/config
  --image IMAGE                [MAILFLEET_IMAGE] relay image when EmailRelay.spec.image is unset
  --http ADDR:PORT             [MAILFLEET_OPERATOR_HTTP] /metrics /healthz /readyz, default 0.0.0.0:8080
  --leader-elect=false         run without a Lease (a single replica)
  --lease-namespace NS         [POD_NAMESPACE] default "default"
  --lease-name NAME            default mailfleet-operator
  --lease-duration SECONDS     default 15
  --identity ID                [POD_NAME] default hostname-pid
  --resync SECONDS             default 300: every object is reconciled again this often
  --workers N                  default 4
  --dns-servers IP[:PORT],...  [MAILFLEET_DNS_SERVERS] resolvers for SenderDomain DNS verification
  --egress-recheck SECONDS     default 900: MX relays' egress PTR records are checked again this often
  --watch-timeout SECONDS      server-side watch timeout (default 240-300)
  --cache-sync-timeout SECONDS default 120: a leader whose caches cannot list everything by then exits 1
  --verify-interval SECONDS    default 3600: a verified domain's DNS proof of control is checked again this often
  --verify-grace SECONDS       default 86400: a domain whose proof disappeared is served this long, then not
  --log-level LEVEL            [MAILFLEET_LOG_LEVEL] default info
  --watch-namespaces NS,...    list, watch and write only in these namespaces (namespace-scoped
                               install, docs/tenancy.md); default: every namespace
  --allow-image-override=true  honour EmailRelay spec.image; default false (the relay is refused)
  --dns-publish=true           publish SenderDomains' records through external-dns (spec.dns.publish:
                               externalDNS), once proven by the _mailfleet TXT; default false
  --test-only-pod-status-urls FILE
                               test seam: read relay pods' /status at the URLs in FILE
                               ({"ns/pod": "http://..."}) instead of through pods/proxy
  -h, --help                   this text
`,
  config: `usage: mailfleet config check FILE [--schema-only]
       mailfleet config schema

  check FILE       validate a relay config and read every file it names (password hashes,
                   DKIM keys, certificates); prints "FILE: ok", or the errors by field and exit 1
  --schema-only    with check: validate the config alone (one written for another machine)
  schema           print the JSON Schema of the relay config (for editors)
  -h, --help       this text
`,
  'hash-password': `usage: echo -n 'the password' | mailfleet hash-password

Reads a password on stdin and prints its scrypt hash, for a relay config's
credentials[].passwordHash or a passwordHashFile.

  -h, --help   this text
`,
  suppression: `usage: mailfleet suppression list [--scope DOMAIN|*] (--config FILE | --data-dir DIR)
       mailfleet suppression add ADDRESS [--scope DOMAIN|*] [--reason TEXT] (--config FILE | --data-dir DIR)
       mailfleet suppression remove ADDRESS [--scope DOMAIN|*] (--config FILE | --data-dir DIR)

Recipients whose mail bounced permanently are suppressed for a while (suppression.ttlHours),
on the list of the sender domain whose mail bounced; the platform-wide list (scope *)
applies to every sender. With --config naming redis, the fleet's list in Redis is read and
changed (every pod sees it); otherwise the journal in the data directory (one pod's).

  list             one line per entry: scope, address, added, expires, code, reason
  add ADDRESS      suppress by hand (default scope: *, the platform-wide list)
  remove ADDRESS   lift it from the scope given, or from every list; exit 1 if it was not suppressed
  --scope S        a sender domain, or * for the platform-wide list
  --reason TEXT    why (add only; shown by list, never to senders)
  -c, --config FILE   the relay config (its dataDir, and redis)
  --data-dir DIR      the relay's data directory
  -h, --help          this text
`,
  queue: `usage: mailfleet queue list [FILTERS] [--json]                  TARGET
       mailfleet queue show ID                                   TARGET
       mailfleet queue retry ID | --all [FILTERS]                TARGET
       mailfleet queue hold ID | release ID                      TARGET
       mailfleet queue delete ID [--dsn]                         TARGET
       mailfleet queue import SOURCE [--keep-source]             TARGET

The relay's queue, like postqueue/postsuper (docs/queue.md).

TARGET, one of:
  --url URL --token-file FILE   a running relay's admin API (http.adminTokenFile; default URL
                                http://127.0.0.1:9464, e.g. inside the pod via kubectl exec);
                                MAILFLEET_ADMIN_TOKEN may stand in for --token-file
  --data-dir DIR | -c FILE      offline, on a data dir no relay is running on
FILTERS (list, retry --all):
  --sender DOMAIN       envelope sender's domain
  --recipient DOMAIN    a recipient still open is in this domain
  --min-age DUR         at least this old (e.g. 30m, 2h, 1d)
  --max-age DUR         at most this old
  list                  one line per message: id, age, size, attempts, flags, sender -> open recipients
  show ID               everything about one message as JSON (envelope, state, header block)
  retry ID | --all      due now (held messages stay held)
  hold ID / release ID  keep a message from delivery / let it go again (due now)
  delete ID [--dsn]     remove it; with --dsn its open recipients are bounced to the sender
  import SOURCE         move every message of another relay's data dir (a PVC whose pod is
                        gone) into TARGET with envelope, state and arrival time; each source
                        file is removed once TARGET has it (--keep-source: left in place)
  -h, --help            this text
`,
};
