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
