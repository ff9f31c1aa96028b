# Transport security of real mobilenet-ps processes (tests/security_e2e_test.py):
# credentials from deploy/make_certs.sh, Python gRPC clients generated from proto/ at test
# time. Needs openssl, protobuf-compiler(-grpc), python3-grpcio, python3-protobuf,
# python3-numpy and python3-cryptography (deploy/install_deps.sh --test). Labels e2e and
# security; bind_refusal and hostile_callers take seconds, rotation trains 2 workers for
# about 30 s (skipped, exit 77, without Fashion-MNIST).
foreach(scenario bind_refusal hostile_callers rotation)
  add_test(NAME security_${scenario}
           COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/security_e2e_test.py
                   --bin_dir $<TARGET_FILE_DIR:mobilenet-ps>
                   --source_dir ${CMAKE_SOURCE_DIR} --scenario ${scenario})
  set_tests_properties(security_${scenario} PROPERTIES LABELS "e2e;security" TIMEOUT 300
                       SKIP_RETURN_CODE 77)
endforeach()
set_tests_properties(security_rotation PROPERTIES RESOURCE_LOCK cluster_e2e)
