# The Kubernetes manifests (deploy/k8s) rendered offline with `kubectl kustomize` and
# checked (tests/k8s_manifests_test.py): kinds and names, the cluster lists against the
# replica and completion counts, task indexes from the pod, gRPC probes of the plaintext
# health port, resources, checkpoint PVCs, model flags equal on PS and workers, mutual TLS
# for every process from read-only Secret mounts (and the Secrets make_cert_secret.sh
# makes: every file the pods name, certificates named for their task), the NetworkPolicies
# in front of the PS and the workers, every pod's metrics port with its --metrics_address
# and prometheus.io annotations, that deploy/k8s/prometheus-scrape.yml makes one target
# per pod of them, and that mobilenet-ps and mobilenet-worker accept the rendered
# arguments. Needs openssl (make_certs.sh). Uses kubectl from PATH (installs
# Debian's kubernetes-client when there is none) and, when `apt-get download` works, also
# checks that Debian 12's kubectl 1.20 renders the same, extracted (not installed) into
# the build folder.
add_test(NAME k8s_manifests
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/k8s_manifests_test.py
                 --bin_dir $<TARGET_FILE_DIR:mobilenet-ps>
                 --cache_dir ${CMAKE_CURRENT_BINARY_DIR}/kubectl-1.20)
set_tests_properties(k8s_manifests PROPERTIES LABELS unit TIMEOUT 120)
