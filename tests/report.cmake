# The training report (mobilenet-ctl report) of a committed run folder rendered by headless
# Chromium (tests/report_render_test.py): the screenshot is not blank and the DOM holds every
# chart's series. Needs chromium (deploy/install_deps.sh --test; skipped, exit 77, when it
# cannot be installed). Labels e2e and report; a few seconds.
add_test(NAME report_render
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/report_render_test.py
                 --bin_dir $<TARGET_FILE_DIR:mobilenet-ctl>
                 --run_dir ${CMAKE_CURRENT_SOURCE_DIR}/fixtures/run_20261201-181701)
set_tests_properties(report_render PROPERTIES LABELS "e2e;report" TIMEOUT 180
                     SKIP_RETURN_CODE 77)
