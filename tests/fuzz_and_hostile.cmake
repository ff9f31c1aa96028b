# Hostile input against a real mobilenet-ps over gRPC, from Python clients generated from
# proto/ at test time (tests/ps_client_for_test.py). Needs Debian's protobuf-compiler,
# protobuf-compiler-grpc, python3-grpcio, python3-protobuf and python3-numpy
# (deploy/install_deps.sh --test).

# Thousands of random and adversarial requests of every RPC, each judged against a model
# of the server's validation, then the counters, the pulled weights and a SIGTERM +
# restore checked (tests/ps_fuzz_test.py). Label fuzz; about 50 s (--seconds 45 of
# requests, a fixed --seed).
add_test(NAME ps_fuzz
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/ps_fuzz_test.py
                 --bin_dir $<TARGET_FILE_DIR:mobilenet-ps>
                 --proto_dir ${CMAKE_SOURCE_DIR}/proto --seed 1 --seconds 45)
set_tests_properties(ps_fuzz PROPERTIES LABELS fuzz TIMEOUT 300)

# One regression scenario per way an earlier server could be broken
# (tests/hostile_requests_test.py), 1 to 25 s each. oversized_burst measures the server's
# resident memory while 8 clients push 400 MiB each (3.2 GB in the test process): it
# shares the cluster tests' lock so that no other heavy test disturbs the figures.
foreach(scenario huge_gradients example_count_overflow oversized_burst unknown_workers
                 corrupt_checkpoints shape_mismatch wire_formats leases)
  add_test(NAME hostile_requests_${scenario}
           COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/hostile_requests_test.py
                   --bin_dir $<TARGET_FILE_DIR:mobilenet-ps>
                   --proto_dir ${CMAKE_SOURCE_DIR}/proto --scenario ${scenario})
  set_tests_properties(hostile_requests_${scenario} PROPERTIES LABELS e2e TIMEOUT 300)
endforeach()
set_tests_properties(hostile_requests_oversized_burst PROPERTIES RESOURCE_LOCK cluster_e2e)
