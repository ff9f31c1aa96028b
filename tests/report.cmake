# The training report (mobilenet-ctl report) of committed run folders rendered by headless
# Chromium (tests/report_render_test.py): the screenshot is not blank and the DOM holds every
# chart's series. Two real runs of deploy/run_local.sh: the default 12 epochs, logged before
# progress lines had their time (images/s from ps-0), 2 epochs with it (images/s from the
# workers), and 1 epoch (on a loaded machine) whose servers logged their staleness
# distribution at the end. Needs chromium (deploy/install_deps.sh --test; skipped, exit 77, when it cannot
# be installed). Labels e2e and report; a few seconds each.
foreach(run "run_20261201-181701;12;ps;" "run_elapsed_2_epochs;2;workers;"
        "run_staleness_1_epoch;1;workers;--staleness_distribution")
  list(GET run 0 folder)
  list(GET run 1 evaluations)
  list(GET run 2 rate_source)
  list(LENGTH run fields)
  set(distribution "")
  if(fields GREATER 3)
    list(GET run 3 distribution)
  endif()
  add_test(NAME report_render_${folder}
           COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/report_render_test.py
                   --bin_dir $<TARGET_FILE_DIR:mobilenet-ctl>
                   --run_dir ${CMAKE_CURRENT_SOURCE_DIR}/fixtures/${folder}
                   --evaluations ${evaluations} --images_per_second_from ${rate_source}
                   ${distribution})
  set_tests_properties(report_render_${folder} PROPERTIES LABELS "e2e;report" TIMEOUT 180
                       SKIP_RETURN_CODE 77)
endforeach()
