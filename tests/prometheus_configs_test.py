#!/usr/bin/python3
"""The Prometheus configurations the project ships are valid for `promtool check config`:

  - deploy/prometheus/prometheus-compose.yml, the docker-compose cluster's (its rule file
    rules.yml included, which promtool checks too);
  - deploy/k8s/prometheus-scrape.yml, the scrape jobs for a Prometheus in a Kubernetes
    cluster. Debian's Prometheus is built without Kubernetes service discovery, so its
    promtool rejects kubernetes_sd_configs as an unknown field. When it does, the file is
    checked in two parts: each kubernetes_sd_configs entry here (role pod, known keys
    only), and the rest by promtool, on a copy where each job's kubernetes_sd_configs is
    replaced by static_configs (so the relabelling rules, regular expressions included,
    and everything else are still promtool's to judge).

Both must scrape under the job names the alerting rules (deploy/prometheus/rules.yml)
select on.

Usage: prometheus_configs_test.py [--source_dir DIR]
Exit 0 when it passes, 1 when it fails, 77 (skipped) without promtool (Debian's
prometheus package; deploy/install_deps.sh --test installs it).
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

try:
    import yaml
except ImportError:
    print("FAILED: python3-yaml is missing (apt-get install python3-yaml)")
    sys.exit(1)

SKIP = 77
# The keys of a kubernetes_sd_configs entry that prometheus-scrape.yml may use.
KUBERNETES_SD_KEYS = {"role", "namespaces", "selectors", "attach_metadata"}


class Failure(Exception):
    pass


def promtool(*args):
    """(exit code, output) of promtool."""
    result = subprocess.run(["promtool"] + list(args), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    return result.returncode, result.stdout


def check_config(path):
    code, out = promtool("check", "config", path)
    if code != 0:
        raise Failure("promtool check config %s:\n%s" % (path, out.strip()))
    print("ok: promtool check config %s" % path)


def rule_jobs(rules_path):
    """The job names the alerting rules select on (job="...")."""
    with open(rules_path) as f:
        return set(re.findall(r'\bjob\s*=\s*"([^"]+)"', f.read()))


def scrape_jobs(config_path):
    with open(config_path) as f:
        return {job["job_name"] for job in yaml.safe_load(f).get("scrape_configs", [])}


def check_kubernetes_scrape(path, work):
    """promtool check config of `path`, or, with a promtool built without Kubernetes
    discovery, of a copy with static_configs in place of kubernetes_sd_configs (whose
    entries are checked here)."""
    code, out = promtool("check", "config", path)
    if code == 0:
        print("ok: promtool check config %s" % path)
        return
    if "field kubernetes_sd_configs not found" not in out:
        raise Failure("promtool check config %s:\n%s" % (path, out.strip()))
    with open(path) as f:
        config = yaml.safe_load(f)
    for job in config.get("scrape_configs", []):
        entries = job.pop("kubernetes_sd_configs", None)
        if not entries:
            raise Failure("%s: job %s has no kubernetes_sd_configs" % (path, job["job_name"]))
        for entry in entries:
            unknown = set(entry) - KUBERNETES_SD_KEYS
            if entry.get("role") != "pod" or unknown:
                raise Failure("%s: job %s: kubernetes_sd_configs entry %s; expected role pod "
                              "and only the keys %s" % (path, job["job_name"], entry,
                                                        sorted(KUBERNETES_SD_KEYS)))
            names = (entry.get("namespaces") or {}).get("names", [])
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise Failure("%s: job %s: namespaces.names %r is not a list of names"
                              % (path, job["job_name"], names))
        job["static_configs"] = [{"targets": ["10.0.0.1:9100"]}]
    copy = os.path.join(work, os.path.basename(path))
    with open(copy, "w") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    check_config(copy)
    print("ok: %s, with static_configs for kubernetes_sd_configs (this promtool has no "
          "Kubernetes discovery; those entries are role pod with known keys)" % path)


def run(source):
    rules = os.path.join(source, "deploy", "prometheus", "rules.yml")
    compose = os.path.join(source, "deploy", "prometheus", "prometheus-compose.yml")
    kubernetes = os.path.join(source, "deploy", "k8s", "prometheus-scrape.yml")
    check_config(compose)
    with tempfile.TemporaryDirectory(prefix="prometheus_configs_") as work:
        check_kubernetes_scrape(kubernetes, work)
    expected = rule_jobs(rules)
    if not expected:
        raise Failure("%s selects on no job (job=\"...\"); expected mobilenet-ps" % rules)
    for path in (compose, kubernetes):
        missing = expected - scrape_jobs(path)
        if missing:
            raise Failure("%s has no scrape job %s, which rules.yml selects on"
                          % (path, sorted(missing)))
    print("ok: both scrape the jobs rules.yml selects on: %s" % ", ".join(sorted(expected)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source_dir",
                        default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    args = parser.parse_args()
    if shutil.which("promtool") is None:
        print("skipped: no promtool (deploy/install_deps.sh --test installs it)")
        return SKIP
    try:
        run(os.path.abspath(args.source_dir))
    except Failure as e:
        print("FAILED: %s" % e)
        return 1
    print("PASSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
