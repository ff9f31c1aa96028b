# The docker-compose cluster on a real Docker engine (tests/compose_e2e_test.py): starts
# dockerd if needed (installing Debian's docker.io and docker-compose when missing), builds
# the base image, the trainer image and the Prometheus image (Debian's package), runs a
# short job with 2 PS and 2 workers on mutual TLS (certificates from deploy/make_certs.sh;
# needs openssl), checks through Prometheus' API that it scrapes all four trainers, sees
# the global step and the applied pushes rise and has loaded deploy/prometheus/rules.yml,
# checks that callers without a certificate of the cluster's CA are refused, each
# container holds only its own key, and rotated certificates are served without a
# restart, kills a worker, stops and resumes the cluster (Prometheus keeps its history),
# then tears everything down (nothing of the project left) and stops the engine it
# started. Needs python3-yaml.
# Labels docker;e2e; about 20 minutes on a fresh machine (base image and image build), a
# few minutes when the images are cached. `ctest -LE docker` leaves it out.
# Skipped (exit 77) when not root and no Docker engine runs.
add_test(NAME compose_e2e
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/compose_e2e_test.py
                 --bin_dir $<TARGET_FILE_DIR:mobilenet-ctl>
                 --source_dir ${CMAKE_SOURCE_DIR})
set_tests_properties(compose_e2e PROPERTIES
                     LABELS "docker;e2e" TIMEOUT 2700 RUN_SERIAL TRUE SKIP_RETURN_CODE 77)
