# Runs a tiny `spruce train --json` and checks the file's keys: cmake -DSPRUCE=... -DOUT=... -P train_json.cmake
# Start from an empty folder, as a fresh build does: a stale one could hide a missing step.
file(REMOVE_RECURSE ${OUT})
file(MAKE_DIRECTORY ${OUT})
execute_process(
  COMMAND ${SPRUCE} train --dataset fashion-mnist --model cnn --pattern 4x16 --sparsity 0.85 --epochs 1
          --train-limit 512 --test-limit 200 --threads 1 --no-progress --json ${OUT}/train.json --save ${OUT}/run
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "spruce train exited with ${rc}")
endif()
file(READ ${OUT}/train.json json)
foreach(key test_accuracy sparsity epochs seconds)
  string(JSON value ERROR_VARIABLE missing GET "${json}" ${key})
  if(missing)
    message(FATAL_ERROR "train.json lacks \"${key}\": ${json}")
  endif()
endforeach()
string(JSON sparsity GET "${json}" sparsity)
if(sparsity LESS 0.84 OR sparsity GREATER 0.86)
  message(FATAL_ERROR "sparsity ${sparsity} is not the 0.85 asked for")
endif()
foreach(file checkpoint.pt masks.safetensors model.safetensors recipe.yaml)
  if(NOT EXISTS ${OUT}/run/${file})
    message(FATAL_ERROR "--save wrote no ${file}")
  endif()
endforeach()

# Distillation: a pruned run taught by the run above (same architecture) records its teacher.
execute_process(
  COMMAND ${SPRUCE} train --dataset fashion-mnist --model cnn --pattern 2:4 --epochs 1 --train-limit 512
          --test-limit 200 --threads 1 --no-progress --teacher ${OUT}/run --distill-weight 0.7
          --json ${OUT}/distilled.json
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "spruce train --teacher exited with ${rc}")
endif()
file(READ ${OUT}/distilled.json json)
string(JSON weight GET "${json}" distillation weight)
string(JSON sparsity GET "${json}" sparsity)
if(NOT weight EQUAL 0.7 OR sparsity LESS 0.49 OR sparsity GREATER 0.51)
  message(FATAL_ERROR "distilled run: weight ${weight}, sparsity ${sparsity}: ${json}")
endif()
# A teacher of another architecture is refused with one line, before training.
execute_process(
  COMMAND ${SPRUCE} train --dataset fashion-mnist --model mlp --epochs 1 --train-limit 64 --test-limit 64
          --threads 1 --no-progress --teacher ${OUT}/run
  RESULT_VARIABLE rc ERROR_VARIABLE err)
if(rc EQUAL 0 OR NOT err MATCHES "spruce: error: ")
  message(FATAL_ERROR "an mlp taught by a cnn was not refused (exit ${rc}): ${err}")
endif()

# A run stopped after its first epoch and resumed ends with the weights of an uninterrupted run:
# the optimizer, the masks' schedule and the shuffles all continue where they stopped.
set(tiny --dataset fashion-mnist --model mlp --pattern 4x1 --sparsity 0.5 --epochs 2 --train-limit 256
         --test-limit 64 --threads 1 --no-progress)
execute_process(COMMAND ${SPRUCE} train ${tiny} --save ${OUT}/straight RESULT_VARIABLE straight_rc)
execute_process(COMMAND ${SPRUCE} train ${tiny} --save ${OUT}/sittings --stop-after 1 --json ${OUT}/first.json
                RESULT_VARIABLE first_rc)
file(READ ${OUT}/first.json json)
string(JSON finished GET "${json}" finished)
if(NOT straight_rc EQUAL 0 OR NOT first_rc EQUAL 0 OR finished OR EXISTS ${OUT}/sittings/model.safetensors)
  message(FATAL_ERROR "the first sitting (exit ${first_rc}, finished ${finished}) or the straight run (${straight_rc})")
endif()
# Another sparsity is refused; the run's own settings, repeated as the first sitting's last line
# advises, continue it (the saved recipe).
set(other ${tiny})
list(TRANSFORM other REPLACE "^0.5$" "0.6")
execute_process(COMMAND ${SPRUCE} train ${other} --resume ${OUT}/sittings --save ${OUT}/sittings
                RESULT_VARIABLE other_rc ERROR_VARIABLE other_err)
if(NOT other_rc EQUAL 2 OR NOT other_err MATCHES "which prunes 4x1 to 50.00%; drop --pattern and --sparsity")
  message(FATAL_ERROR "a resume with another --sparsity was not refused (exit ${other_rc}): ${other_err}")
endif()
execute_process(COMMAND ${SPRUCE} train ${tiny} --resume ${OUT}/sittings --save ${OUT}/sittings RESULT_VARIABLE rc)
file(SHA256 ${OUT}/straight/model.safetensors straight)
file(SHA256 ${OUT}/sittings/model.safetensors resumed)
if(NOT rc EQUAL 0 OR NOT straight STREQUAL resumed)
  message(FATAL_ERROR "the resumed run (exit ${rc}) did not end with the uninterrupted run's weights")
endif()
